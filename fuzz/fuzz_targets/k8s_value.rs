//! Any stored value read as a Kubernetes object: an object or one error line, never a panic.
//! Values that carry the protobuf magic exercise the envelope and the schema-driven decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for value in [data.to_vec(), [b"k8s\0".as_slice(), data].concat()] {
        match lifeboat_k8s::decode(&value) {
            Ok(decoded) => assert!(decoded.object.is_object() || decoded.schema.is_none()),
            Err(error) => assert!(!error.to_string().contains('\n')),
        }
    }
});
