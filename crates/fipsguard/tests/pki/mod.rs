//! A test PKI made with openssl: a CA, a server certificate for
//! localhost, client certificates with chosen SANs, a CRL, and weak keys.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A directory of certificates and keys.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a server certificate (`server.pem`, DNS:localhost).
    pub fn new() -> Self {
        let pki = Self {
            dir: tempfile::TempDir::new().unwrap(),
        };
        pki.ca("ca");
        std::fs::write(pki.path("index.txt"), "").unwrap();
        std::fs::write(pki.path("crlnumber"), "01\n").unwrap();
        std::fs::write(
            pki.path("ca.cnf"),
            "[ca]\ndefault_ca = local\n[local]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n",
        )
        .unwrap();
        pki.leaf("server", "DNS:localhost");
        pki.write_crl();
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// `NAME.pem` and `NAME.key`: a P-256 certificate signed by the CA
    /// (SHA-256) for both server and client use, with `san` (e.g.
    /// `DNS:a,URI:b`). Made again, it replaces the files (new serial).
    pub fn leaf(&self, name: &str, san: &str) {
        self.leaf_with(
            name,
            san,
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "sha256",
        );
    }

    /// As [`Pki::leaf`], with another key (`-newkey` arguments, e.g.
    /// `["rsa:1024"]`) or another signature digest (e.g. `sha1`).
    pub fn leaf_with(&self, name: &str, san: &str, newkey: &[&str], digest: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.path(&ext),
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"),
        )
        .unwrap();
        let (csr, key, pem) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
        );
        // Written beside, then renamed: a reader never sees half a file.
        let (key_new, pem_new) = (format!("{key}.new"), format!("{pem}.new"));
        let subject = format!("/CN={name}/O=fipsguard tests");
        let mut request = vec!["req", "-new", "-nodes", "-subj", &subject, "-newkey"];
        request.extend_from_slice(newkey);
        request.extend_from_slice(&["-keyout", &key_new, "-out", &csr]);
        self.openssl(&request);
        let digest = format!("-{digest}");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            &digest,
            "-extfile",
            &ext,
            "-out",
            &pem_new,
        ]);
        std::fs::rename(self.path(&key_new), self.path(&key)).unwrap();
        std::fs::rename(self.path(&pem_new), self.path(&pem)).unwrap();
    }

    /// `NAME.pem` and `NAME.key`: a self-signed RSA-1024 certificate for
    /// localhost, which the policy refuses.
    pub fn rsa_1024(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-newkey",
            "rsa:1024",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// Revokes `NAME.pem` and writes `crl.pem` again.
    pub fn revoke(&self, name: &str) {
        self.openssl(&[
            "ca",
            "-config",
            "ca.cnf",
            "-keyfile",
            "ca.key",
            "-cert",
            "ca.pem",
            "-revoke",
            &format!("{name}.pem"),
        ]);
        self.write_crl();
    }

    /// Writes `crl.pem` again, renamed into place: a tunnel watching the
    /// file never reads half of it.
    fn write_crl(&self) {
        self.gencrl("crl.pem.new", &[]);
        std::fs::rename(self.path("crl.pem.new"), self.path("crl.pem")).unwrap();
    }

    /// `NAME.pem` and `NAME.key`: a P-256 client certificate signed by the
    /// CA, valid from a minute ago until `seconds` from now (`openssl ca`
    /// sets the dates to the second).
    pub fn short_lived_leaf(&self, name: &str, seconds: u64) {
        std::fs::write(
            self.path("issue.cnf"),
            "[ca]\ndefault_ca = local\n[local]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = issued.srl\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n[client]\nbasicConstraints = CA:FALSE\n\
             extendedKeyUsage = clientAuth\n",
        )
        .unwrap();
        let (csr, key, pem) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={name}/O=fipsguard tests");
        self.openssl(&[
            "req",
            "-new",
            "-nodes",
            "-subj",
            &subject,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        let now = unix_now();
        let (start, end) = (openssl_time(now - 60), openssl_time(now + seconds));
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "issue.cnf",
            "-create_serial",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-extensions",
            "client",
            "-extfile",
            "issue.cnf",
            "-startdate",
            &start,
            "-enddate",
            &end,
            "-in",
            &csr,
            "-out",
            &pem,
        ]);
    }

    /// The CA's CRL as DER at `file` (renamed into place), current or one
    /// whose nextUpdate passed a day ago.
    pub fn der_crl(&self, file: &str, expired: bool) {
        let day = |days_ago: u64| openssl_time(unix_now() - days_ago * 86_400);
        let (last, next) = (day(2), day(1));
        let dates = ["-crl_lastupdate", &last, "-crl_nextupdate", &next];
        self.gencrl("crl.der.pem", if expired { &dates } else { &[] });
        let to_der = [
            "crl",
            "-in",
            "crl.der.pem",
            "-outform",
            "DER",
            "-out",
            "crl.der.new",
        ];
        self.openssl(&to_der);
        std::fs::rename(self.path("crl.der.new"), self.path(file)).unwrap();
    }

    /// A CRL at `file` (renamed into place) in the CA's name but signed by
    /// another key: a list from another CA of that name, or a forgery.
    pub fn forged_crl(&self, file: &str) {
        self.ca("forger");
        let forger = ["-keyfile", "forger.key", "-cert", "forger.pem"];
        let gencrl = ["ca", "-config", "ca.cnf", "-gencrl", "-out", "forged.new"];
        self.openssl(&[&gencrl[..], &forger].concat());
        std::fs::rename(self.path("forged.new"), self.path(file)).unwrap();
    }

    /// `NAME.pem` and `NAME.key`: a self-signed P-256 CA named as the
    /// test CA.
    fn ca(&self, name: &str) {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=fipsguard test CA",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &key,
            "-out",
            &pem,
        ]);
    }

    /// The CA's CRL (PEM) at `out`, made with `extra` arguments.
    fn gencrl(&self, out: &str, extra: &[&str]) {
        let ca = [
            "ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem",
        ];
        self.openssl(&[&ca[..], &["-gencrl", "-out", out], extra].concat());
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn unix_now() -> u64 {
    std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()
}

/// A time as `openssl ca` takes it: `YYYYMMDDHHMMSSZ`, UTC.
fn openssl_time(unix: u64) -> String {
    let output = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y%m%d%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
