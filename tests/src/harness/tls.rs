//! Certificates made by the test: a CA of its own and server certificates it signs, written where
//! a private MariaDB server can read them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("tidemark test CA {name}"),
        );
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-sign the CA"),
        }
    }

    /// The CA certificate, PEM: what a task spec's `tls.ca_pem` holds.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes a server certificate for `names` (host names or IP addresses), signed by this CA,
    /// with the CA and the key, into `dir`; returns the `mariadbd` options that use them.
    pub fn server_files(&self, dir: &Path, names: &[&str]) -> Vec<String> {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        std::fs::create_dir_all(dir).expect("create the certificate dir");
        let write = |file: &str, text: &str| -> PathBuf {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("write a certificate file");
            path
        };
        let ca = write("ca.pem", &self.pem());
        let crt = write("server-cert.pem", &cert.pem());
        let key = write("server-key.pem", &key.serialize_pem());
        vec![
            format!("--ssl-ca={}", ca.display()),
            format!("--ssl-cert={}", crt.display()),
            format!("--ssl-key={}", key.display()),
        ]
    }
}
