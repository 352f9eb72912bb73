//! DKIM signing of each copy (mail-auth), with the list's RSA or Ed25519 key.
//!
//! Every copy is signed after it is filled, because the fields that differ per recipient
//! (`List-Unsubscribe`) must be covered: RFC 8058 asks that the signature include them.

use std::path::Path;

use mail_auth::{
    common::{
        crypto::{DkimKey, Ed25519Key, RsaKey, Sha256},
        headers::HeaderWriter,
    },
    dkim::{Canonicalization, DkimSigner, Done},
};
use rustls::pki_types::PrivateKeyDer;

use crate::config::DkimConfig;

/// Fields signed when present. `From` is required by RFC 6376; the list fields bind the
/// unsubscribe link to the signer.
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Post",
    "List-Help",
    "List-Owner",
    "List-Subscribe",
    "List-Archive",
];

/// Read a PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
pub fn load_key(path: &Path) -> Result<DkimKey, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{} holds no private key", path.display()))?;
    if let Ok(rsa) = RsaKey::<Sha256>::from_key_der(der.clone_key()) {
        return Ok(DkimKey::Rsa(rsa));
    }
    if let PrivateKeyDer::Pkcs8(p8) = &der
        && let Ok(ed) = Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der())
    {
        return Ok(DkimKey::Ed25519(ed));
    }
    Err(format!(
        "{} is neither an RSA nor an Ed25519 private key",
        path.display()
    ))
}

/// A list's signer.
pub struct Signer {
    signer: DkimSigner<DkimKey, Done>,
}

impl Signer {
    pub fn new(config: &DkimConfig) -> Result<Signer, String> {
        let key = load_key(&config.private_key)?;
        let signer = DkimSigner::from_key(key)
            .domain(config.domain.clone())
            .selector(config.selector.clone())
            .headers(SIGNED.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Signer { signer })
    }

    /// The `DKIM-Signature:` field (CRLF-terminated) to put in front of `copy`.
    pub fn sign(&self, copy: &[u8]) -> Result<Vec<u8>, String> {
        let signature = self.signer.sign(copy).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(512);
        signature.write_header(&mut out);
        // mail-auth may fold right after the last byte of `b=`, leaving `<FWS>;` at the
        // end. RFC 6376 deletes whitespace around the `b=` value before hashing, but common
        // verifiers (dkimpy, so also many filters) keep it and fail the signature, so the
        // fold is taken out; it was never part of what was signed.
        if out.ends_with(b"\r\n\t;\r\n") {
            out.truncate(out.len() - 6);
            out.extend_from_slice(b";\r\n");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_that_are_not_keys_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        let err = super::load_key(&junk).err().unwrap();
        assert!(err.contains("junk.pem"), "{err}");
        let missing = super::load_key(&dir.path().join("missing.pem"))
            .err()
            .unwrap();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
