//! The membership advert decoder, `scheduler_lib::membership::verify_advert`.
//! First byte 1: the rest is an `Advert` payload, signed with
//! `Domain::Advert` by a fixed key (so decoding and the bounds checks are
//! reached). Any other first byte: the rest is a raw `pb::SignedEnvelope`.
//! Each envelope is checked at puzzle difficulty 0, at the key's own
//! difficulty and one above it.
//!
//! Never panics; a verified advert names its signer, stays within the
//! bounds, and a key below the required difficulty is always refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{mode, signer, verbose};
use peergrid_proto::{Domain, PeerId, envelope, pb, puzzle};
use prost::Message;
use scheduler_lib::membership::advert::{MAX_ADDRS, MAX_FEATURES, MAX_FIELD_BYTES};
use scheduler_lib::membership::{AdvertError, verify_advert};

fuzz_target!(|data: &[u8]| {
    let Some((signed_mode, rest)) = mode(data) else {
        return;
    };
    let signed = if signed_mode {
        envelope::sign(signer(), Domain::Advert, rest.to_vec())
    } else {
        match pb::SignedEnvelope::decode(rest) {
            Ok(signed) => signed,
            Err(_) => return,
        }
    };
    let key_bits = <[u8; 32]>::try_from(signed.public_key.as_slice())
        .map(|k| puzzle::difficulty(&k))
        .unwrap_or(0);
    for bits in [0, key_bits, key_bits.saturating_add(1)] {
        let verified = verify_advert(&signed, bits);
        if verbose() {
            eprintln!("bits {bits}: {:?}", verified.as_ref().map(|v| &v.advert));
        }
        match verified {
            Ok(v) => {
                assert!(key_bits >= bits);
                assert_eq!(
                    Some(v.peer),
                    PeerId::from_public_key_bytes(&signed.public_key)
                );
                assert_eq!(v.public_key.as_slice(), signed.public_key.as_slice());
                assert_eq!(v.envelope, signed);
                let a = &v.advert;
                assert!(!a.addrs.is_empty() && a.addrs.len() <= MAX_ADDRS);
                assert!(a.wasm_features.len() <= MAX_FEATURES);
                assert!(a.version.len() <= MAX_FIELD_BYTES);
                assert_eq!(v.primary_addr(), a.addrs[0]);
            }
            Err(e) => {
                if let AdvertError::WeakPuzzle {
                    bits: got,
                    required,
                } = e
                {
                    assert!(got < required);
                }
                assert!(e.blames_relayer());
                let _ = e.to_string();
            }
        }
    }
});
