//! The storage layout: checksummed frames and key encoding.

use cairn_checkpoint::RunId;
use cairn_checkpoint_sled::layout::{
    run_prefix, seal, seal_with_seq, seq_key, seq_of_key, split_seq, unseal,
};

fn run(text: &str) -> RunId {
    RunId::new(text).expect("valid run id")
}

#[test]
fn a_sealed_frame_opens_to_its_payload() {
    let frame = seal(b"{\"a\":1}");
    assert_eq!(unseal(&frame), Some(&b"{\"a\":1}"[..]));
    assert_eq!(unseal(&seal(b"")), Some(&b""[..]));
}

#[test]
fn every_single_bit_flip_is_detected() {
    let frame = seal(b"journal record payload");
    for byte in 0..frame.len() {
        for bit in 0..8 {
            let mut bad = frame.clone();
            bad[byte] ^= 1 << bit;
            assert_eq!(unseal(&bad), None, "flip of bit {bit} in byte {byte}");
        }
    }
}

#[test]
fn truncated_frames_are_rejected() {
    let frame = seal(b"payload");
    for len in 0..frame.len() {
        assert_eq!(unseal(&frame[..len]), None, "frame cut to {len} bytes");
    }
}

#[test]
fn sequenced_frames_carry_their_sequence() {
    let frame = seal_with_seq(42, b"body");
    let payload = unseal(&frame).expect("valid frame");
    assert_eq!(split_seq(payload), Some((42, &b"body"[..])));
    assert_eq!(split_seq(&[1, 2, 3]), None);
}

#[test]
fn journal_keys_sort_in_sequence_order() {
    let r = run("r1");
    let keys: Vec<Vec<u8>> = [0u64, 1, 255, 256, 65_536, u64::MAX]
        .iter()
        .map(|&seq| seq_key(&r, seq))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let prefix = run_prefix(&r).len();
    assert_eq!(seq_of_key(prefix, &seq_key(&r, 256)), Some(256));
    assert_eq!(seq_of_key(prefix, b"r1/short"), None);
}

#[test]
fn one_run_prefix_never_matches_another_run() {
    let a = run("a");
    let ab = run("ab");
    assert!(!seq_key(&ab, 0).starts_with(&run_prefix(&a)));
    assert!(!seq_key(&a, 0).starts_with(&run_prefix(&ab)));
}
