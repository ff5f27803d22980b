//! Unit tests of the frame decoder: every protocol error and its close code, fragmentation with
//! interleaved control frames, every split point of a stream, length encodings, unmasking, and a
//! random-input robustness test.
#![allow(clippy::indexing_slicing)]

use super::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

const PROTOCOL: Step = Step::Fail(CloseCode::PROTOCOL_ERROR);
const UTF8: Step = Step::Fail(CloseCode::INVALID_PAYLOAD);
const TOO_BIG: Step = Step::Fail(CloseCode::MESSAGE_TOO_BIG);

fn limits(max: usize) -> Limits {
    Limits {
        max_message_bytes: max,
    }
}

/// A masked client frame with the given first byte, using the shortest length encoding.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let len = payload.len();
    if len <= 125 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], KEY);
    out
}

/// One `next` call on a fresh reader.
fn one(bytes: &[u8]) -> (Step, Vec<u8>) {
    let mut assembled = Vec::new();
    let step = Reader::new().next(bytes, &limits(1 << 20), &mut assembled);
    (step, assembled)
}

fn frame_of(event: Event, used: usize) -> Step {
    Step::Frame { event, used }
}

/// What the worker would see: each event, with the message for Text and Binary, until the input
/// runs dry (`Need`) or the reader fails.
#[derive(Debug, PartialEq)]
enum Seen {
    Event(Event, Vec<u8>),
    Fail(CloseCode),
}

/// Feeds `stream` in pieces cut at `cuts`, the way the worker does: unconsumed bytes stay at the
/// front of its input buffer.
fn feed(stream: &[u8], cuts: &[usize], max: usize) -> Vec<Seen> {
    let mut reader = Reader::new();
    let mut input = Vec::new();
    let mut assembled = Vec::new();
    let mut seen = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
        input.extend_from_slice(&stream[from..to]);
        from = to;
        loop {
            match reader.next(&input, &limits(max), &mut assembled) {
                Step::Need => break,
                Step::Fail(code) => {
                    seen.push(Seen::Fail(code));
                    return seen;
                }
                Step::Frame { event, used } => {
                    assert!(used <= input.len());
                    input.drain(..used);
                    let message = match event {
                        Event::Text | Event::Binary => std::mem::take(&mut assembled),
                        _ => Vec::new(),
                    };
                    seen.push(Seen::Event(event, message));
                }
            }
        }
    }
    assert!(input.is_empty(), "bytes left over: {input:?}");
    seen
}

fn ping(payload: &[u8]) -> Event {
    Event::Ping(Control::unmasked(payload, [0; 4]))
}

#[test]
fn the_rfc_example_masked_hello() {
    let bytes = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(bytes.to_vec(), frame(FIN | TEXT, b"Hello"));
    let (step, assembled) = one(&bytes);
    assert_eq!(step, frame_of(Event::Text, 11));
    assert_eq!(assembled, b"Hello");
}

#[test]
fn every_prefix_of_a_frame_is_need_and_consumes_nothing() {
    for payload in [&b""[..], b"x", &[7u8; 125], &[7u8; 126], &[7u8; 70_000]] {
        let bytes = frame(FIN | BINARY, payload);
        for cut in 0..bytes.len() {
            let mut reader = Reader::new();
            let mut assembled = Vec::new();
            let step = reader.next(&bytes[..cut], &limits(1 << 20), &mut assembled);
            assert_eq!(step, Step::Need, "len {} cut {cut}", payload.len());
            assert!(assembled.is_empty());
            assert_eq!(reader, Reader::new());
        }
        let (step, assembled) = one(&bytes);
        assert_eq!(step, frame_of(Event::Binary, bytes.len()));
        assert_eq!(assembled, payload);
    }
}

#[test]
fn a_frame_followed_by_more_bytes_uses_only_its_own() {
    let mut bytes = frame(FIN | TEXT, b"one");
    let first = bytes.len();
    bytes.extend_from_slice(&frame(FIN | TEXT, b"two")[..4]);
    assert_eq!(one(&bytes), (frame_of(Event::Text, first), b"one".to_vec()));
}

#[test]
fn an_unmasked_client_frame_is_a_protocol_error_from_its_second_byte() {
    assert_eq!(one(&[FIN | TEXT, 0x05]).0, PROTOCOL);
    assert_eq!(
        one(&[FIN | TEXT, 0x05, b'H', b'e', b'l', b'l', b'o']).0,
        PROTOCOL
    );
    assert_eq!(one(&[FIN | PING, 0x00]).0, PROTOCOL);
}

#[test]
fn reserved_bits_are_a_protocol_error_from_the_first_byte() {
    for rsv in [0x40, 0x20, 0x10, 0x70] {
        assert_eq!(one(&[FIN | rsv | TEXT]).0, PROTOCOL, "{rsv:#x}");
        assert_eq!(one(&frame(FIN | rsv | BINARY, b"x")).0, PROTOCOL);
        assert_eq!(one(&frame(FIN | rsv | PING, b"")).0, PROTOCOL);
    }
}

#[test]
fn reserved_opcodes_are_a_protocol_error() {
    for opcode in (0x3..=0x7).chain(0xB..=0xF) {
        assert_eq!(one(&[FIN | opcode]).0, PROTOCOL, "{opcode:#x}");
        assert_eq!(one(&frame(FIN | opcode, b"payload")).0, PROTOCOL);
        assert_eq!(one(&frame(opcode, b"")).0, PROTOCOL);
    }
}

#[test]
fn fragmented_control_frames_are_a_protocol_error() {
    for opcode in [CLOSE, PING, PONG] {
        assert_eq!(one(&[opcode]).0, PROTOCOL, "{opcode:#x}");
        assert_eq!(one(&frame(opcode, b"")).0, PROTOCOL);
    }
}

#[test]
fn control_frames_over_125_bytes_are_a_protocol_error_from_the_head() {
    for opcode in [CLOSE, PING, PONG] {
        // 126 and 127 announce an extended length: refused before it arrives.
        assert_eq!(one(&[FIN | opcode, 0x80 | 126]).0, PROTOCOL);
        assert_eq!(one(&[FIN | opcode, 0x80 | 127]).0, PROTOCOL);
        assert_eq!(one(&frame(FIN | opcode, &[b'a'; 126])).0, PROTOCOL);
    }
    let (step, _) = one(&frame(FIN | PING, &[b'a'; 125]));
    assert_eq!(step, frame_of(ping(&[b'a'; 125]), 2 + 4 + 125));
    let (step, _) = one(&frame(FIN | PONG, &[b'a'; 125]));
    assert_eq!(step, frame_of(Event::Pong, 131));
}

#[test]
fn a_continuation_without_a_message_is_a_protocol_error() {
    assert_eq!(one(&[FIN | CONT]).0, PROTOCOL);
    assert_eq!(one(&[CONT]).0, PROTOCOL);
    // Also right after a message has ended.
    let mut stream = frame(FIN | TEXT, b"done");
    stream.extend(frame(FIN | CONT, b"more"));
    assert_eq!(
        feed(&stream, &[], 100),
        [
            Seen::Event(Event::Text, b"done".to_vec()),
            Seen::Fail(CloseCode::PROTOCOL_ERROR)
        ]
    );
}

#[test]
fn a_new_data_frame_inside_a_fragmented_message_is_a_protocol_error() {
    for (first, second) in [
        (TEXT, TEXT),
        (TEXT, BINARY),
        (BINARY, TEXT),
        (BINARY, BINARY),
    ] {
        for fin in [0, FIN] {
            let mut stream = frame(first, b"part");
            stream.extend(frame(fin | second, b"new"));
            assert_eq!(
                feed(&stream, &[], 100),
                [
                    Seen::Event(Event::Fragment, Vec::new()),
                    Seen::Fail(CloseCode::PROTOCOL_ERROR)
                ]
            );
        }
    }
}

#[test]
fn fragments_reassemble_around_interleaved_control_frames() {
    let mut stream = frame(TEXT, b"Hel");
    stream.extend(frame(FIN | PING, b"are you there"));
    stream.extend(frame(CONT, b""));
    stream.extend(frame(FIN | PONG, b"yes"));
    stream.extend(frame(FIN | CONT, b"lo"));
    stream.extend(frame(BINARY, &[0xFF, 0x00]));
    stream.extend(frame(FIN | PING, b""));
    stream.extend(frame(FIN | CONT, &[0xFE]));
    stream.extend(frame(FIN | CLOSE, &1000u16.to_be_bytes()));
    assert_eq!(
        feed(&stream, &[], 100),
        [
            Seen::Event(Event::Fragment, Vec::new()),
            Seen::Event(ping(b"are you there"), Vec::new()),
            Seen::Event(Event::Fragment, Vec::new()),
            Seen::Event(Event::Pong, Vec::new()),
            Seen::Event(Event::Text, b"Hello".to_vec()),
            Seen::Event(Event::Fragment, Vec::new()),
            Seen::Event(ping(b""), Vec::new()),
            Seen::Event(Event::Binary, vec![0xFF, 0x00, 0xFE]),
            Seen::Event(
                Event::Close {
                    code: Some(CloseCode::NORMAL)
                },
                Vec::new()
            ),
        ]
    );
}

#[test]
fn the_reader_tracks_the_message_in_progress() {
    let mut reader = Reader::new();
    let mut assembled = Vec::new();
    let l = limits(100);
    assert!(!reader.in_message());
    let first = frame(BINARY, b"ab");
    assert_eq!(
        reader.next(&first, &l, &mut assembled),
        frame_of(Event::Fragment, first.len())
    );
    assert!(reader.in_message());
    let last = frame(FIN | CONT, b"cd");
    assert_eq!(
        reader.next(&last, &l, &mut assembled),
        frame_of(Event::Binary, last.len())
    );
    assert!(!reader.in_message());
    assert_eq!(assembled, b"abcd");
    assert_eq!(std::mem::size_of::<Reader>(), 8);
}

#[test]
fn a_new_message_starts_from_an_empty_buffer_even_if_the_caller_did_not_clear_it() {
    let mut reader = Reader::new();
    let mut assembled = b"stale".to_vec();
    let bytes = frame(FIN | TEXT, b"fresh");
    reader.next(&bytes, &limits(100), &mut assembled);
    assert_eq!(assembled, b"fresh");
}

#[test]
fn every_split_of_a_stream_decodes_like_the_whole() {
    let mut stream = frame(FIN | TEXT, "héllo wörld".as_bytes());
    stream.extend(frame(TEXT, &"€uro".as_bytes()[..2])); // cut inside '€'
    stream.extend(frame(FIN | PING, b"p"));
    stream.extend(frame(CONT, &"€uro".as_bytes()[2..4]));
    stream.extend(frame(FIN | CONT, &"€uro".as_bytes()[4..]));
    stream.extend(frame(FIN | BINARY, &[9u8; 300]));
    stream.extend(frame(FIN | PONG, b""));
    stream.extend(frame(FIN | CLOSE, b"\x03\xe8bye"));
    let whole = feed(&stream, &[], 1000);
    assert_eq!(whole.len(), 8);
    assert_eq!(
        whole[4],
        Seen::Event(Event::Text, "€uro".as_bytes().to_vec())
    );
    for cut in 0..=stream.len() {
        assert_eq!(feed(&stream, &[cut], 1000), whole, "cut at {cut}");
    }
    for (a, b) in [(1, 2), (3, 17), (5, 40), (20, 300), (2, 333)] {
        assert_eq!(feed(&stream, &[a, b], 1000), whole);
    }
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(feed(&stream, &bytewise, 1000), whole);
}

#[test]
fn every_split_of_a_failing_stream_fails_the_same_way() {
    let mut stream = frame(TEXT, b"ok");
    stream.extend(frame(FIN | PING, b"p"));
    stream.extend(frame(FIN | CONT, &[0xC3, 0x28])); // invalid sequence
    let whole = feed(&stream, &[], 100);
    assert_eq!(whole.last(), Some(&Seen::Fail(CloseCode::INVALID_PAYLOAD)));
    for cut in 0..=stream.len() {
        assert_eq!(feed(&stream, &[cut], 100), whole, "cut at {cut}");
    }
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(feed(&stream, &bytewise, 100), whole);
}

#[test]
fn invalid_utf8_in_a_text_message_is_1007() {
    assert_eq!(one(&frame(FIN | TEXT, &[0xFF])).0, UTF8);
    assert_eq!(one(&frame(FIN | TEXT, b"ok\xC0\xAF")).0, UTF8); // overlong
    assert_eq!(one(&frame(FIN | TEXT, b"\xED\xA0\x80")).0, UTF8); // surrogate
    assert_eq!(one(&frame(FIN | TEXT, b"\xE2\x82")).0, UTF8); // ends mid-character
                                                              // The same bytes are fine in a binary message.
    assert_eq!(
        one(&frame(FIN | BINARY, &[0xFF])).0,
        frame_of(Event::Binary, 7)
    );
}

#[test]
fn invalid_utf8_fails_at_the_fragment_that_shows_it() {
    // A definitely invalid byte fails at once, before the message ends.
    let mut stream = frame(TEXT, b"fine");
    stream.extend(frame(CONT, b"\xFF"));
    stream.extend(frame(FIN | CONT, b"never read"));
    assert_eq!(
        feed(&stream, &[], 100),
        [
            Seen::Event(Event::Fragment, Vec::new()),
            Seen::Fail(CloseCode::INVALID_PAYLOAD)
        ]
    );
    // A fragment ending mid-character waits for the next; a message ending so fails.
    let mut stream = frame(TEXT, b"\xE2\x82");
    stream.extend(frame(FIN | CONT, b"\xAC"));
    assert_eq!(
        feed(&stream, &[], 100)[1],
        Seen::Event(Event::Text, "€".as_bytes().to_vec())
    );
    let mut stream = frame(TEXT, b"\xE2");
    stream.extend(frame(FIN | CONT, b"\x82"));
    assert_eq!(
        feed(&stream, &[], 100)[1],
        Seen::Fail(CloseCode::INVALID_PAYLOAD)
    );
    // A continuation that cannot complete the pending character fails.
    let mut stream = frame(TEXT, b"\xE2\x82");
    stream.extend(frame(CONT, b"A"));
    assert_eq!(
        feed(&stream, &[], 100)[1],
        Seen::Fail(CloseCode::INVALID_PAYLOAD)
    );
}

#[test]
fn close_payloads() {
    assert_eq!(
        one(&frame(FIN | CLOSE, b"")).0,
        frame_of(Event::Close { code: None }, 6)
    );
    assert_eq!(one(&frame(FIN | CLOSE, b"\x03")).0, PROTOCOL);
    assert_eq!(
        one(&frame(FIN | CLOSE, b"\x03\xe9going")).0,
        frame_of(
            Event::Close {
                code: Some(CloseCode::GOING_AWAY)
            },
            13
        )
    );
    assert_eq!(one(&frame(FIN | CLOSE, b"\x03\xe8\xFF")).0, UTF8);
    assert_eq!(one(&frame(FIN | CLOSE, b"\x03\xe8\xE2\x82")).0, UTF8);
    let mut long = b"\x0f\xa0".to_vec();
    long.extend("é".repeat(61).as_bytes()); // 2 + 122 bytes
    assert_eq!(
        one(&frame(FIN | CLOSE, &long)).0,
        frame_of(
            Event::Close {
                code: Some(CloseCode(4000))
            },
            6 + 124
        )
    );
    // An invalid code is a protocol error, even with a valid reason.
    assert_eq!(one(&frame(FIN | CLOSE, b"\x03\xedbye")).0, PROTOCOL); // 1005
}

#[test]
fn close_code_validity_table() {
    let valid = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ];
    let invalid = [
        0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for code in valid {
        assert!(CloseCode(code).is_valid_received(), "{code}");
        let bytes = frame(FIN | CLOSE, &code.to_be_bytes());
        let expected = Event::Close {
            code: Some(CloseCode(code)),
        };
        assert_eq!(one(&bytes).0, frame_of(expected, 8), "{code}");
    }
    for code in invalid {
        assert!(!CloseCode(code).is_valid_received(), "{code}");
        assert_eq!(one(&frame(FIN | CLOSE, &code.to_be_bytes())).0, PROTOCOL);
    }
    // Every code agrees with the rule.
    for code in 0..=u16::MAX {
        let rule = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        assert_eq!(CloseCode(code).is_valid_received(), rule);
    }
}

#[test]
fn ping_payloads_are_unmasked_copies() {
    let (step, _) = one(&frame(FIN | PING, b"hello ping"));
    let Step::Frame {
        event: Event::Ping(payload),
        used: 16,
    } = step
    else {
        panic!("{step:?}");
    };
    assert_eq!(payload.as_bytes(), b"hello ping");
}

#[test]
fn sixteen_bit_lengths() {
    for len in [126, 127, 1000, 65535] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let bytes = frame(FIN | BINARY, &payload);
        assert_eq!(bytes[1], 0x80 | 126);
        assert_eq!(one(&bytes), (frame_of(Event::Binary, 8 + len), payload));
    }
    // A length that would fit in 7 bits is accepted in 16 bits too.
    let mut bytes = vec![FIN | TEXT, 0x80 | 126, 0, 2];
    bytes.extend_from_slice(&KEY);
    bytes.extend_from_slice(b"hi");
    unmask(&mut bytes[8..], KEY);
    assert_eq!(one(&bytes), (frame_of(Event::Text, 10), b"hi".to_vec()));
}

#[test]
fn sixty_four_bit_lengths() {
    for len in [65536, 100_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let bytes = frame(FIN | BINARY, &payload);
        assert_eq!(bytes[1], 0x80 | 127);
        assert_eq!(one(&bytes), (frame_of(Event::Binary, 14 + len), payload));
    }
}

#[test]
fn a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() {
    let mut bytes = vec![FIN | BINARY, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert_eq!(one(&bytes).0, PROTOCOL);
    let mut bytes = vec![FIN | BINARY, 0x80 | 127];
    bytes.extend_from_slice(&u64::MAX.to_be_bytes());
    bytes.extend_from_slice(&KEY);
    assert_eq!(one(&bytes).0, PROTOCOL);
}

#[test]
fn an_oversized_message_fails_from_its_head_alone() {
    let max = 1000;
    let l = limits(max);
    // Exactly the limit is fine.
    let bytes = frame(FIN | BINARY, &vec![1; max]);
    let mut assembled = Vec::new();
    assert_eq!(
        Reader::new().next(&bytes, &l, &mut assembled),
        frame_of(Event::Binary, bytes.len())
    );
    // One more fails as soon as the length is known: no mask key, no payload yet.
    let bytes = frame(FIN | TEXT, &vec![b'a'; max + 1]);
    assert_eq!(Reader::new().next(&bytes[..4], &l, &mut assembled), TOO_BIG);
    assert_eq!(
        Reader::new().next(&bytes[..3], &l, &mut assembled),
        Step::Need
    );
    // A 64-bit length far beyond any buffer.
    let mut huge = vec![FIN | BINARY, 0x80 | 127];
    huge.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    assert_eq!(Reader::new().next(&huge, &l, &mut assembled), TOO_BIG);
    let mut huge = vec![FIN | BINARY, 0x80 | 127];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let big = limits(usize::MAX);
    assert_eq!(Reader::new().next(&huge, &big, &mut assembled), TOO_BIG);
    // A limit of 0 still admits empty messages and control frames.
    let zero = limits(0);
    let bytes = frame(FIN | TEXT, b"");
    assert_eq!(
        Reader::new().next(&bytes, &zero, &mut assembled),
        frame_of(Event::Text, 6)
    );
    let bytes = frame(FIN | PING, b"abc");
    assert_eq!(
        Reader::new().next(&bytes, &zero, &mut assembled),
        frame_of(ping(b"abc"), 9)
    );
    assert_eq!(
        Reader::new().next(&frame(FIN | TEXT, b"a"), &zero, &mut assembled),
        TOO_BIG
    );
}

#[test]
fn the_limit_counts_all_the_fragments_of_a_message() {
    let mut stream = frame(BINARY, &[1; 400]);
    stream.extend(frame(CONT, &[2; 400]));
    stream.extend(frame(FIN | CONT, &[3; 200]));
    assert_eq!(feed(&stream, &[], 1000).len(), 3);
    let mut over = frame(BINARY, &[1; 400]);
    over.extend(frame(CONT, &[2; 400]));
    let third = over.len();
    over.extend(frame(FIN | CONT, &[3; 201]));
    let seen = feed(&over[..third + 4], &[], 1000);
    assert_eq!(seen.last(), Some(&Seen::Fail(CloseCode::MESSAGE_TOO_BIG)));
    // A control frame in the middle does not count.
    let mut stream = frame(TEXT, &[b'a'; 1000]);
    stream.extend(frame(FIN | PING, &[b'p'; 125]));
    stream.extend(frame(FIN | CONT, b""));
    assert_eq!(
        feed(&stream, &[], 1000).last(),
        Some(&Seen::Event(Event::Text, vec![b'a'; 1000]))
    );
}

/// The reference: one byte at a time, with the key's index taken modulo 4.
fn naive_unmask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

#[test]
fn unmasking_matches_the_definition_and_round_trips() {
    let keys = [[0, 0, 0, 0], [1, 2, 3, 4], [0xFF, 0x00, 0xAA, 0x55], KEY];
    for key in keys {
        for len in 0..=70 {
            let original: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut fast = original.clone();
            let mut slow = original.clone();
            unmask(&mut fast, key);
            naive_unmask(&mut slow, key);
            assert_eq!(fast, slow, "key {key:?} len {len}");
            unmask(&mut fast, key);
            assert_eq!(fast, original);
        }
    }
}

#[test]
fn random_bytes_never_panic_and_steps_stay_in_bounds() {
    let mut seed = 0x9E37_79B9_u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut assembled = Vec::new();
    for round in 0..20_000 {
        let len = (rand() % 40) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
        // Make many of them plausible heads, so the later checks are reached.
        if round % 2 == 0 && len > 2 {
            bytes[0] &= 0x8F;
            bytes[1] |= 0x80;
        }
        let mut reader = Reader::new();
        let mut rest = &bytes[..];
        let l = limits((rand() % 64) as usize);
        while let Step::Frame { used, .. } = reader.next(rest, &l, &mut assembled) {
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
}
