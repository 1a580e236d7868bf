//! Arbitrary bytes decoded as a `pb::SignedEnvelope` (prost) and verified
//! with `peergrid_proto::envelope::verify` under every `Domain`.
//!
//! Never panics; a verified envelope names the key that signed it and hands
//! back exactly the payload it carried; no envelope verifies under two
//! domains (the domain tags separate them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{DOMAINS, verbose};
use peergrid_proto::{PeerId, envelope, pb};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = pb::SignedEnvelope::decode(data) else {
        return;
    };
    let mut verified_as = None;
    for domain in DOMAINS {
        let result = envelope::verify(&signed, domain);
        if verbose() {
            eprintln!("{domain:?}: {:?}", result.as_ref().map(|v| v.signer));
        }
        match result {
            Ok(v) => {
                assert_eq!(
                    Some(v.signer),
                    PeerId::from_public_key_bytes(&signed.public_key)
                );
                assert_eq!(v.payload, signed.payload.as_slice());
                assert!(
                    verified_as.replace(domain).is_none(),
                    "one envelope verified as {verified_as:?} and {domain:?}"
                );
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
