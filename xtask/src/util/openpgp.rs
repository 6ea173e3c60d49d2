//! The fingerprint of a key in an OpenPGP keyring file (RFC 4880: packets,
//! v4 keys), found by name the way Helm's signer finds the key it signs
//! with: the first key with a user id that contains the name.
//!
//! Only what naming a key needs: packet framing, the public part of a key
//! packet and its user ids. No signature is made or checked here (helm signs,
//! `helm pull --verify` verifies), so a full OpenPGP implementation would be
//! a large dependency for about a hundred lines of framing.

use sha1::{Digest as _, Sha1};

/// One packet: its tag and body.
struct Packet<'a> {
    tag: u8,
    body: &'a [u8],
}

/// The v4 fingerprint (40 upper-case hex digits) of the first primary key in
/// `keyring` (binary, as `gpg --export` or `--export-secret-keys` writes it)
/// that has a user id containing `name`.
pub fn fingerprint(keyring: &[u8], name: &str) -> Result<String, String> {
    let mut current: Option<&[u8]> = None;
    let mut names = Vec::new();
    for packet in packets(keyring)? {
        match packet.tag {
            // A secret or public primary key starts the next key.
            5 | 6 => current = Some(packet.body),
            13 => {
                let user_id = String::from_utf8_lossy(packet.body).into_owned();
                if let Some(key) = current.filter(|_| user_id.contains(name)) {
                    return v4_fingerprint(key);
                }
                names.push(user_id);
            }
            _ => {}
        }
    }
    Err(format!(
        "no key with a user id containing {name:?} (user ids: {})",
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    ))
}

/// Splits a keyring into packets (old and new header formats).
fn packets(bytes: &[u8]) -> Result<Vec<Packet<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    let byte = |i: usize| bytes.get(i).copied().map(usize::from).ok_or("a packet header is cut short");
    while at < bytes.len() {
        let header = bytes[at];
        if header & 0x80 == 0 {
            return Err(format!("byte {at} is not a packet header: not a binary OpenPGP keyring (an armored one? export it without --armor)"));
        }
        let (tag, length, start) = if header & 0x40 != 0 {
            let first = byte(at + 1)?;
            match first {
                0..=191 => (header & 0x3f, first, at + 2),
                192..=223 => (header & 0x3f, ((first - 192) << 8) + byte(at + 2)? + 192, at + 3),
                255 => {
                    let n = (byte(at + 2)? << 24) | (byte(at + 3)? << 16) | (byte(at + 4)? << 8) | byte(at + 5)?;
                    (header & 0x3f, n, at + 6)
                }
                _ => return Err(format!("byte {at}: a partial-length packet, which keys never use")),
            }
        } else {
            let tag = (header >> 2) & 0x0f;
            match header & 0x03 {
                0 => (tag, byte(at + 1)?, at + 2),
                1 => (tag, (byte(at + 1)? << 8) | byte(at + 2)?, at + 3),
                2 => {
                    let n = (byte(at + 1)? << 24) | (byte(at + 2)? << 16) | (byte(at + 3)? << 8) | byte(at + 4)?;
                    (tag, n, at + 5)
                }
                _ => (tag, bytes.len() - (at + 1), at + 1),
            }
        };
        let body = bytes.get(start..start + length).ok_or_else(|| format!("byte {at}: a packet is cut short"))?;
        out.push(Packet { tag, body });
        at = start + length;
    }
    Ok(out)
}

/// SHA-1 over `0x99`, the two-byte length and the public part of a v4 key
/// packet (for a secret key packet, the fields before the secret ones).
fn v4_fingerprint(key: &[u8]) -> Result<String, String> {
    let public = public_part(key)?;
    let length = u16::try_from(public.len()).map_err(|_| "a public key longer than 65535 bytes".to_string())?;
    let mut hasher = Sha1::new();
    hasher.update([0x99]);
    hasher.update(length.to_be_bytes());
    hasher.update(public);
    Ok(hasher.finalize().iter().map(|b| format!("{b:02X}")).collect())
}

/// Version, creation time, algorithm and the algorithm's public fields.
fn public_part(key: &[u8]) -> Result<&[u8], String> {
    match key.first() {
        Some(4) => {}
        Some(version) => return Err(format!("a version {version} key: only version 4 keys are supported")),
        None => return Err("an empty key packet".into()),
    }
    let algorithm = *key.get(5).ok_or("a key packet is cut short")?;
    let mut at = 6;
    let mpi = |at: &mut usize| -> Result<(), String> {
        let bits = key.get(*at..*at + 2).ok_or("a key packet is cut short")?;
        *at += 2 + usize::from(u16::from_be_bytes([bits[0], bits[1]])).div_ceil(8);
        Ok(())
    };
    let counted = |at: &mut usize| -> Result<(), String> {
        *at += 1 + usize::from(*key.get(*at).ok_or("a key packet is cut short")?);
        Ok(())
    };
    match algorithm {
        1..=3 => (0..2).try_for_each(|_| mpi(&mut at))?,
        16 => (0..3).try_for_each(|_| mpi(&mut at))?,
        17 => (0..4).try_for_each(|_| mpi(&mut at))?,
        18 => {
            counted(&mut at)?;
            mpi(&mut at)?;
            counted(&mut at)?;
        }
        19 | 22 => {
            counted(&mut at)?;
            mpi(&mut at)?;
        }
        25 | 27 => at += 32,
        26 => at += 56,
        28 => at += 57,
        other => return Err(format!("public key algorithm {other} is not known")),
    }
    key.get(..at).ok_or_else(|| "a key packet is cut short".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_errors_are_named_not_panics() {
        assert!(fingerprint(b"-----BEGIN PGP", "x").unwrap_err().contains("armored"));
        assert!(fingerprint(&[0xc6, 0x05, 4, 0], "x").unwrap_err().contains("cut short"));
        assert!(fingerprint(&[0xc6, 0x02, 4, 0], "x").unwrap_err().contains("no key"));
        // A user id before any key names no key.
        assert!(fingerprint(&[0xcd, 0x01, b'x'], "x").unwrap_err().contains("user ids: x"));
        let truncated = [0xc6, 0x08, 4, 0, 0, 0, 0, 1, 0x08, 0x00];
        assert!(fingerprint(&[&truncated[..], &[0xcd, 0x01, b'x']].concat(), "x").unwrap_err().contains("cut short"));
    }
}
