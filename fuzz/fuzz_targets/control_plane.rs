//! Arbitrary bytes as a control-plane tar, a certificate file and a kubeconfig: the certificate
//! scanner must report or skip them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_core::certs::{read_tar, scan};

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let mut files = read_tar(data);
    files.push(("etc/kubernetes/pki/x.crt".into(), data.to_vec()));
    files.push(("etc/kubernetes/admin.conf".into(), data.to_vec()));
    let _ = scan(&files, now, 30);
});
