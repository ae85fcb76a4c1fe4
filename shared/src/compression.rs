//! Large message bodies travel compressed.
//!
//! A replication batch is megabytes of JSON rows that repeat the same
//! column names: 5,000 computers' rows (2.5 MB) take about 170 KB as an LZ4
//! block. A quorum queue writes every byte of a message to its log and its
//! segments: the replication benchmark's million rows made the broker
//! write 1,127 MB, compressed 65 MB, with a fifth less of its CPU
//! (`bench/README.md`, change 48), and a site's broker linked to its
//! master's over a WAN carries a fifteenth of the bytes.
//!
//! A compressed body is marked by the AMQP `content_encoding` property
//! [`LZ4`]: a little-endian `u32` of the uncompressed size, then one LZ4
//! block. The signature covers the bytes as they travel (compressed). A
//! body without the property is the envelope's JSON itself, so either side
//! may be the older one as long as the sender does not compress. The
//! receiver checks the announced size against its limit before it makes
//! room for it, and the decoder checks every copy against that room: a
//! body cannot make the receiver hold more than the limit.

use std::borrow::Cow;

/// The AMQP `content_encoding` of a body compressed as this module does.
pub const LZ4: &str = "lz4";

/// Bodies shorter than this travel as they are: a command or a heartbeat
/// gains nothing worth a step on either side.
pub const COMPRESS_FROM_BYTES: usize = 16 * 1024;

/// Why a body could not be read (a consumer's [`crate::envelope::Rejection`]
/// says the same).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the body is {size} bytes, over the {limit}-byte limit")]
    Oversized { size: usize, limit: usize },
    #[error("the {LZ4}-compressed body is corrupt: {0}")]
    Corrupt(String),
    #[error("content encoding '{0}' is not supported (only {LZ4})")]
    UnknownEncoding(String),
}

/// `payload` as it should travel and its content encoding: compressed when
/// it is at least [`COMPRESS_FROM_BYTES`] long and compressing shortens it.
pub fn compress(payload: Vec<u8>) -> (Vec<u8>, Option<&'static str>) {
    if payload.len() < COMPRESS_FROM_BYTES || u32::try_from(payload.len()).is_err() {
        return (payload, None);
    }
    let compressed = lz4(&payload);
    if compressed.len() < payload.len() {
        (compressed, Some(LZ4))
    } else {
        (payload, None)
    }
}

/// `payload` as [`LZ4`] encodes it, whatever its size.
pub fn lz4(payload: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(payload)
}

/// The body `data` carries, at most `limit` bytes, given its AMQP
/// `content_encoding`: `data` itself when it has none.
pub fn decompress<'a>(data: &'a [u8], encoding: Option<&str>, limit: usize) -> Result<Cow<'a, [u8]>, DecodeError> {
    match encoding {
        None | Some("") => Ok(Cow::Borrowed(data)),
        Some(LZ4) => {
            let corrupt = |e: lz4_flex::block::DecompressError| DecodeError::Corrupt(e.to_string());
            let (size, block) = lz4_flex::block::uncompressed_size(data).map_err(corrupt)?;
            if size > limit {
                return Err(DecodeError::Oversized { size, limit });
            }
            let body = lz4_flex::block::decompress(block, size).map_err(corrupt)?;
            if body.len() != size {
                return Err(DecodeError::Corrupt(format!(
                    "it holds {} bytes, not the {size} it announces",
                    body.len()
                )));
            }
            Ok(Cow::Owned(body))
        }
        Some(other) => Err(DecodeError::UnknownEncoding(other.chars().take(64).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<u8> {
        let rows: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"id":"paris-{i:06}","hostname":"pc-{i}","status":"protected","licensed":true}}"#))
            .collect();
        format!("[{}]", rows.join(",")).into_bytes()
    }

    #[test]
    fn large_bodies_travel_compressed_and_come_back_whole() {
        let body = rows(2_000);
        let (wire, encoding) = compress(body.clone());
        assert_eq!(encoding, Some(LZ4));
        assert!(wire.len() * 4 < body.len(), "{} bytes compressed to {}", body.len(), wire.len());
        assert_eq!(decompress(&wire, encoding, body.len()).unwrap().as_ref(), body.as_slice());
    }

    #[test]
    fn small_bodies_travel_as_they_are() {
        let body = rows(3);
        let (wire, encoding) = compress(body.clone());
        assert_eq!((wire.as_slice(), encoding), (body.as_slice(), None));
        assert!(matches!(decompress(&wire, None, 10).unwrap(), Cow::Borrowed(b) if b == body.as_slice()));
    }

    #[test]
    fn a_body_larger_than_the_limit_is_refused_before_it_is_decompressed() {
        let body = rows(2_000);
        let (wire, encoding) = compress(body.clone());
        let err = decompress(&wire, encoding, body.len() - 1).unwrap_err();
        assert_eq!(err, DecodeError::Oversized { size: body.len(), limit: body.len() - 1 });
        // An announced size of 4 GiB is refused without making room for it.
        let mut forged = u32::MAX.to_le_bytes().to_vec();
        forged.extend_from_slice(&wire[4..]);
        assert!(matches!(decompress(&forged, encoding, 1 << 20), Err(DecodeError::Oversized { .. })));
    }

    #[test]
    fn corrupt_or_lying_bodies_are_refused_with_a_reason() {
        let body = rows(2_000);
        let (wire, encoding) = compress(body.clone());
        let err = decompress(&wire[..wire.len() / 2], encoding, 1 << 24).unwrap_err();
        assert!(err.to_string().contains("lz4-compressed body is corrupt"), "{err}");
        // A block that holds more than its size says does not fit the room made for it.
        let mut understated = ((body.len() - 10) as u32).to_le_bytes().to_vec();
        understated.extend_from_slice(&wire[4..]);
        let err = decompress(&understated, encoding, 1 << 24).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        // One that holds less.
        let mut overstated = ((body.len() + 10) as u32).to_le_bytes().to_vec();
        overstated.extend_from_slice(&wire[4..]);
        let err = decompress(&overstated, encoding, 1 << 24).unwrap_err();
        assert!(err.to_string().contains("not the"), "{err}");
        assert!(decompress(b"", encoding, 10).is_err());
    }

    #[test]
    fn unknown_encodings_are_named() {
        let err = decompress(b"{}", Some("gzip"), 10).unwrap_err();
        assert_eq!(err.to_string(), "content encoding 'gzip' is not supported (only lz4)");
    }
}
