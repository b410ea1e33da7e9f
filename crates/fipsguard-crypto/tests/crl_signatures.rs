//! Revocation lists are checked against the CA they name when they are
//! read: lists from CAs of every kind the policy takes are accepted, a list
//! its CA did not sign is refused, and one from a CA outside the bundle is
//! left to the handshakes. The CAs and lists are made by openssl, as an
//! operator's would be.

use std::process::Command;

use fipsguard_crypto::tls::PeerTrust;

const NAME: &str = "/CN=fipsguard CRL test CA";

/// A directory where `openssl ca` can issue revocation lists.
struct Workshop(tempfile::TempDir);

impl Workshop {
    fn new() -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("index.txt"), "").unwrap();
        std::fs::write(dir.path().join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.path().join("ca.cnf"),
            "[ca]\ndefault_ca = local\n[local]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_crl_days = 2\n",
        )
        .unwrap();
        Self(dir)
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.0.path().join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.0.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `CA.pem` and `CA.key`: a self-signed CA named `NAME`, with a key
    /// made by `newkey` (e.g. `rsa:3072`) and its options.
    fn ca(&self, ca: &str, newkey: &[&str]) {
        self.ca_named(ca, NAME, newkey);
    }

    /// The same, named `subject`.
    fn ca_named(&self, ca: &str, subject: &str, newkey: &[&str]) {
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        let request = [
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-days",
            "2",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &pem,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-newkey",
        ];
        self.openssl(&[&request[..], newkey].concat());
    }

    /// `OUT`: a revocation list signed by `CA`'s key with `options`
    /// (`-md`, `-sigopt`).
    fn crl(&self, ca: &str, out: &str, options: &[&str]) {
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        let gencrl = [
            "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", &key, "-cert", &pem, "-out", out,
        ];
        self.openssl(&[&gencrl[..], options].concat());
    }

    /// `BUNDLE`: the certificates of `cas`, one after the other.
    fn bundle(&self, bundle: &str, cas: &[&str]) {
        let pems: Vec<String> = cas
            .iter()
            .map(|ca| std::fs::read_to_string(self.path(&format!("{ca}.pem"))).unwrap())
            .collect();
        std::fs::write(self.path(bundle), pems.concat()).unwrap();
    }

    fn read(&self, bundle: &str, crl: &str) -> Result<PeerTrust, String> {
        PeerTrust::read(&self.path(bundle), Some(&self.path(crl))).map_err(|e| e.to_string())
    }
}

/// A CA of each kind: its own list is read, one signed by another key of
/// the same kind and name is refused.
#[test]
fn a_list_must_verify_under_the_key_of_its_ca() {
    let rsa: &[&str] = &["rsa:3072"];
    let p384: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:P-384"];
    let pss = [
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:digest",
    ];
    // Each with the signature algorithm openssl must have used.
    for (kind, newkey, options, algorithm) in [
        (
            "RSA, PKCS #1 v1.5 over SHA-256",
            rsa,
            &["-md", "sha256"][..],
            "sha256WithRSAEncryption",
        ),
        (
            "RSA-PSS over SHA-256",
            rsa,
            &[&["-md", "sha256"][..], &pss].concat()[..],
            "rsassaPss",
        ),
        (
            "ECDSA P-384 over SHA-384",
            p384,
            &["-md", "sha384"][..],
            "ecdsa-with-SHA384",
        ),
    ] {
        let shop = Workshop::new();
        shop.ca("ca", newkey);
        shop.ca("forger", newkey);
        shop.bundle("bundle.pem", &["ca"]);
        shop.crl("ca", "genuine.pem", options);
        shop.crl("forger", "forged.pem", options);
        let text = Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(shop.path("genuine.pem"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("Signature Algorithm: {algorithm}")),
            "{kind}: {text}"
        );
        let genuine = shop.read("bundle.pem", "genuine.pem");
        assert!(genuine.is_ok(), "{kind}: {:?}", genuine.err());
        let forged = shop.read("bundle.pem", "forged.pem").err();
        let refusal = forged.unwrap_or_else(|| panic!("{kind}: the forged list is read"));
        assert!(
            refusal.contains("forged.pem")
                && refusal
                    .contains("the revocation list of CN=fipsguard CRL test CA does not verify"),
            "{kind}: {refusal}"
        );
    }
}

/// Two CAs of one name (a key rolled over) in the bundle: each one's list
/// is read. A list in the name of a CA outside the bundle (an
/// intermediate's) is left to the handshakes, which see that CA.
#[test]
fn a_rolled_over_ca_and_an_intermediate_keep_their_lists() {
    let p256: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let shop = Workshop::new();
    shop.ca("old", p256);
    shop.ca("new", p256);
    shop.bundle("both.pem", &["old", "new"]);
    shop.crl("old", "old-crl.pem", &["-md", "sha256"]);
    shop.crl("new", "new-crl.pem", &["-md", "sha256"]);
    let lists = [
        std::fs::read_to_string(shop.path("old-crl.pem")).unwrap(),
        std::fs::read_to_string(shop.path("new-crl.pem")).unwrap(),
    ];
    std::fs::write(shop.path("lists.pem"), lists.concat()).unwrap();
    let both = shop.read("both.pem", "lists.pem");
    assert!(both.is_ok(), "{:?}", both.err());
    assert_eq!(both.unwrap().crls.len(), 2);

    let other = Workshop::new();
    other.ca_named("other", "/CN=another CA", p256);
    std::fs::copy(shop.path("new-crl.pem"), other.path("elsewhere.pem")).unwrap();
    let elsewhere = other.read("other.pem", "elsewhere.pem");
    assert!(elsewhere.is_ok(), "{:?}", elsewhere.err());
}
