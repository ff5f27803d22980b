//! Message encoding and escaping: `Message::new` (the one encoding of a pushed message into its
//! shared JSON object) for a 100-byte and a 1 KiB content, and `escape_into` (what `/push` does
//! to its content) for a 100-byte string full of quotes and control bytes and for a plain ASCII
//! one.

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use rcomet::comet::escape::escape_into;
use rcomet::comet::{Message, MsgType};

fn main() {
    divan::main();
}

const CNAME: &[u8] = b"channel-42";

/// `len` bytes of already-escaped content, as `/push` hands it to the hub.
fn content(len: usize) -> Vec<u8> {
    b"hello world, this is a chat message "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[divan::bench(args = [100, 1024])]
fn message_new(bencher: Bencher, len: usize) {
    let content = content(len);
    bencher
        .counter(BytesCount::new(len))
        .bench(|| Message::new(MsgType::Data, CNAME, black_box(1234), black_box(&content)));
}

/// 100 bytes with something to escape every few bytes: quotes, backslashes, CR/LF, tab and two
/// other control bytes.
fn needs_escaping() -> Vec<u8> {
    let piece: &[u8] = b"say \"hi\"\r\n\tpath C:\\x \x01\x1f ";
    let s: Vec<u8> = piece.iter().copied().cycle().take(100).collect();
    assert_eq!(s.len(), 100);
    s
}

fn bench_escape(bencher: Bencher, input: &[u8]) {
    let mut out = Vec::with_capacity(6 * input.len());
    bencher
        .counter(BytesCount::of_slice(input))
        .bench_local(|| {
            out.clear();
            escape_into(&mut out, black_box(input));
            out.len()
        });
}

#[divan::bench]
fn escape_100_quotes_and_controls(bencher: Bencher) {
    bench_escape(bencher, &needs_escaping());
}

#[divan::bench]
fn escape_100_plain_ascii(bencher: Bencher) {
    let plain = content(100);
    assert!(plain.iter().all(|&b| b.is_ascii_graphic() || b == b' '));
    bench_escape(bencher, &plain);
}
