//! The kubeadm manifests a recovery reads from a node: any bytes give a manifest or one error
//! line, never a panic; a manifest read has its member in its initial cluster and a host data
//! directory that is absolute.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match lifeboat_kubeadm::parse_etcd_manifest("fuzz", text) {
        Ok(manifest) => {
            assert!(manifest.host_data_dir.is_absolute());
            assert!(
                manifest.initial_cluster.is_empty()
                    || manifest.initial_cluster.iter().any(|m| m.name == manifest.name)
            );
        }
        Err(error) => assert!(!error.to_string().contains('\n')),
    }
    if let Err(error) = lifeboat_kubeadm::static_pod_path("fuzz", Some(text)) {
        assert!(!error.to_string().contains('\n'));
    }
});
