//! `check tls` reads whatever an endpoint sends back to its ClientHellos:
//! records, handshake messages split across them, certificates, key
//! exchanges. Any bytes must end as a reply (a hello or a refusal), never a
//! panic or a hang.
#![no_main]

use fipsguard_check::tls::{read_reply, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for through_key_exchange in [false, true] {
        match read_reply(&mut &data[..], through_key_exchange) {
            Reply::Hello(hello) => assert!(hello.certificates.len() <= data.len()),
            Reply::Refused(reason) | Reply::Unanswered(reason) => assert!(!reason.is_empty()),
            Reply::CutOff(reason) => assert!(!reason.is_empty()),
        }
    }
});
