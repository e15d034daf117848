// Test frames are far below 4 GiB; the casts build headers on purpose.
#![allow(clippy::cast_possible_truncation)]

use super::*;

use proptest::prelude::*;

fn log(seq: u64, text: &str) -> Envelope {
    Envelope::new(
        "FR-12-20261123T100000-abcd",
        RoleName::Codegen,
        seq,
        Message::Log(Log {
            level: LogLevel::Info,
            message: text.to_owned(),
        }),
    )
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn round_trips_through_a_stream() {
    let mut wire = Vec::new();
    write_frame(&mut wire, &log(1, "a")).unwrap();
    write_frame(&mut wire, &log(2, "b")).unwrap();
    let mut r = wire.as_slice();
    assert_eq!(read_frame(&mut r).unwrap(), Some(log(1, "a")));
    assert_eq!(read_frame(&mut r).unwrap(), Some(log(2, "b")));
    assert_eq!(read_frame(&mut r).unwrap(), None);
}

#[test]
fn every_frame_carries_run_role_seq_and_version() {
    let bytes = try_encode(&log(7, "x")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
    assert_eq!(v["run_id"], "FR-12-20261123T100000-abcd");
    assert_eq!(v["role"], "codegen");
    assert_eq!(v["seq"], 7);
    assert_eq!(v["protocol"], PROTOCOL_VERSION);
    assert_eq!(v["body"]["kind"], "log");
}

#[test]
fn oversized_frame_is_refused_from_its_header() {
    let header = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
    let mut r = &header[..];
    assert!(matches!(
        read_frame(&mut r),
        Err(FrameError::Oversized { len, max }) if len == MAX_FRAME_BYTES + 1 && max == MAX_FRAME_BYTES
    ));
    let too_big = log(1, &"x".repeat(MAX_FRAME_BYTES));
    assert!(matches!(
        try_encode(&too_big),
        Err(FrameError::Oversized { .. })
    ));
}

#[test]
fn truncated_frames_are_reported() {
    let bytes = try_encode(&log(1, "hello")).unwrap();
    let mut r = &bytes[..2];
    assert!(matches!(
        read_frame(&mut r),
        Err(FrameError::Truncated { have: 2, need: 4 })
    ));
    let cut = &bytes[..bytes.len() - 1];
    let mut r = cut;
    assert!(matches!(
        read_frame(&mut r),
        Err(FrameError::Truncated { .. })
    ));
    let mut d = FrameDecoder::new();
    d.feed(cut);
    assert!(d.next_frame().unwrap().is_none());
    assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));
}

#[test]
fn unknown_kind_unknown_field_and_bad_version_are_refused() {
    let unknown = br#"{"protocol":"1.0.0","run_id":"r","role":"codegen","seq":1,"body":{"kind":"become_root"}}"#;
    assert!(
        matches!(decode_body(unknown), Err(FrameError::UnknownKind { kind }) if kind == "become_root")
    );
    let extra = br#"{"protocol":"1.0.0","run_id":"r","role":"codegen","seq":1,"admin":true,"body":{"kind":"log","level":"info","message":"m"}}"#;
    assert!(matches!(
        decode_body(extra),
        Err(FrameError::BadJson { .. })
    ));
    let v2 = br#"{"protocol":"2.0.0","run_id":"r","role":"codegen","seq":1,"body":{"kind":"log","level":"info","message":"m"}}"#;
    assert!(matches!(
        decode_body(v2),
        Err(FrameError::IncompatibleVersion { .. })
    ));
    let minor = br#"{"protocol":"1.7.0","run_id":"r","role":"codegen","seq":1,"body":{"kind":"log","level":"info","message":"m"}}"#;
    assert!(decode_body(minor).is_ok());
}

#[test]
fn decoder_skips_an_oversized_frame_and_recovers() {
    let mut d = FrameDecoder::new();
    let big = MAX_FRAME_BYTES + 10;
    d.feed(&(big as u32).to_be_bytes());
    d.feed(&vec![b'x'; 1000]);
    assert!(matches!(d.next_frame(), Err(FrameError::Oversized { .. })));
    // The rest of the oversized body arrives in pieces and is dropped, never buffered.
    let mut left = big - 1000;
    while left > 0 {
        let n = left.min(64 * 1024);
        d.feed(&vec![b'x'; n]);
        left -= n;
        assert!(d.pending() <= big);
    }
    d.feed(&try_encode(&log(3, "after")).unwrap());
    assert_eq!(d.next_frame().unwrap(), Some(log(3, "after")));
    d.finish().unwrap();
}

#[test]
fn decoder_recovers_after_garbage_json() {
    let mut d = FrameDecoder::new();
    d.feed(&frame_of(b"{not json"));
    d.feed(&try_encode(&log(1, "ok")).unwrap());
    assert!(matches!(d.next_frame(), Err(FrameError::BadJson { .. })));
    assert_eq!(d.next_frame().unwrap(), Some(log(1, "ok")));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Arbitrary bytes fed in arbitrary chunks: the decoder never panics, and never holds more
    /// than one frame's worth of bytes plus what was fed since.
    #[test]
    fn decoder_never_panics_on_garbage(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..512,
    ) {
        let mut d = FrameDecoder::new();
        for piece in bytes.chunks(chunk) {
            d.feed(piece);
            while let Ok(Some(_)) | Err(_) = d.next_frame() {
                if d.pending() < 4 { break; }
            }
        }
        let _ = d.finish();
    }

    /// Valid frames split at any points decode to exactly what was sent, in order.
    #[test]
    fn valid_frames_survive_any_split(texts in proptest::collection::vec(".{0,40}", 1..8), chunk in 1usize..64) {
        let sent: Vec<Envelope> = texts.iter().enumerate().map(|(i, t)| log(i as u64, t)).collect();
        let wire: Vec<u8> = sent.iter().flat_map(|e| try_encode(e).unwrap()).collect();
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            d.feed(piece);
            while let Some(e) = d.next_frame().unwrap() {
                got.push(e);
            }
        }
        d.finish().unwrap();
        prop_assert_eq!(got, sent);
    }

    /// Any byte flipped in a valid frame: a clean error or some envelope, never a panic.
    #[test]
    fn flipped_bytes_never_panic(pos in 0usize..200, byte in any::<u8>()) {
        let mut bytes = try_encode(&log(1, "some message text")).unwrap();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let mut r = bytes.as_slice();
        let _ = read_frame(&mut r);
    }
}
