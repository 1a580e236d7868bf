//! Sign a fuzzer-chosen payload under a fuzzer-chosen domain with one of
//! sixteen fixed keys, send it through the wire encoding (prost encode, then
//! decode), optionally flip bits of one field, and verify under every
//! domain: the untouched envelope verifies under its own domain only; any
//! change to the payload, key or signature makes every domain fail.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{DOMAINS, identities};
use peergrid_proto::{envelope, pb};
use prost::Message;

#[derive(Debug, Arbitrary)]
enum Field {
    Payload,
    PublicKey,
    Signature,
}

#[derive(Debug, Arbitrary)]
struct Input {
    key: u8,
    domain: u8,
    payload: Vec<u8>,
    tamper: Option<(Field, u16, u8)>,
}

fuzz_target!(|input: Input| {
    let author = &identities()[usize::from(input.key) % identities().len()];
    let domain = DOMAINS[usize::from(input.domain) % DOMAINS.len()];
    let signed = envelope::sign(author, domain, input.payload);
    let mut received =
        pb::SignedEnvelope::decode(signed.encode_to_vec().as_slice()).expect("own encoding");
    assert_eq!(received, signed);

    let mut tampered = false;
    if let Some((field, at, xor)) = input.tamper {
        let bytes = match field {
            Field::Payload => &mut received.payload,
            Field::PublicKey => &mut received.public_key,
            Field::Signature => &mut received.signature,
        };
        if !bytes.is_empty() && xor != 0 {
            let at = usize::from(at) % bytes.len();
            bytes[at] ^= xor;
            tampered = true;
        }
    }
    for other in DOMAINS {
        let result = envelope::verify(&received, other);
        if tampered || other != domain {
            assert!(result.is_err(), "{other:?} accepted {received:?}");
        } else {
            let verified = result.expect("an untouched envelope verifies");
            assert_eq!(verified.signer, author.peer_id());
            assert_eq!(verified.payload, signed.payload.as_slice());
        }
    }
});
