//! `ShortBytes`: a few bytes a subscription keeps of its own (its JSONP callback name; a
//! WebSocket's accept value until its head is written). Up to `INLINE` (14) bytes live inside the
//! 16-byte value, so the common callback (`icomet_cb_0`) costs an idle subscriber no allocation;
//! longer ones go to the heap behind one thin pointer. Depends on std only.

/// Bytes kept inside the value.
pub const INLINE: usize = 14;

/// A short byte string, inline when it fits.
#[derive(Clone, PartialEq, Eq)]
pub enum ShortBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<Box<[u8]>>),
}

impl ShortBytes {
    /// A copy of `bytes`.
    pub fn new(bytes: &[u8]) -> ShortBytes {
        let mut inline = [0u8; INLINE];
        match inline.get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                ShortBytes::Inline {
                    len: bytes.len() as u8,
                    bytes: inline,
                }
            }
            None => ShortBytes::Heap(Box::new(Box::from(bytes))),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ShortBytes::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            ShortBytes::Heap(b) => b,
        }
    }
}

impl std::ops::Deref for ShortBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for ShortBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_sixteen_bytes_even_optional() {
        assert_eq!(std::mem::size_of::<ShortBytes>(), 16);
        assert_eq!(std::mem::size_of::<Option<ShortBytes>>(), 16);
    }

    #[test]
    fn short_ones_are_inline_and_long_ones_on_the_heap() {
        for len in [0, 1, 11, INLINE, INLINE + 1, 28, 128] {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let s = ShortBytes::new(&bytes);
            assert_eq!(s.as_bytes(), &bytes[..], "length {len}");
            assert_eq!(matches!(s, ShortBytes::Inline { .. }), len <= INLINE);
            assert_eq!(&*s.clone(), &bytes[..]);
        }
        assert_eq!(
            format!("{:?}", ShortBytes::new(b"icomet_cb_0")),
            "\"icomet_cb_0\""
        );
    }
}
