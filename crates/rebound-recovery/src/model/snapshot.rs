//! A reference to the snapshot a rollback restores, with its CRC32C.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SnapshotError;

/// The state captured before a migration, kept as a file, with its checksum
/// (CRC32C, written `crc32c:xxxxxxxx`) and when it was captured (ms since
/// the Unix epoch).
///
/// ```
/// use rebound_recovery::SnapshotRef;
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("state.bin");
/// std::fs::write(&file, b"workload state").unwrap();
/// let snap = SnapshotRef::capture(&file, 1_000).unwrap();
/// assert!(snap.checksum.starts_with("crc32c:"));
/// assert!(snap.verify(2_000, std::time::Duration::from_secs(60)).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The snapshot file.
    pub path: PathBuf,
    /// `crc32c:` and eight hex digits.
    pub checksum: String,
    /// Size in bytes when captured.
    pub size: u64,
    /// When it was captured, ms since the Unix epoch.
    pub captured_at_ms: u64,
}

impl SnapshotRef {
    /// Reads `path` and records its checksum, size and capture time.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = dir.path().join("s");
    /// std::fs::write(&file, b"123456789").unwrap();
    /// let snap = rebound_recovery::SnapshotRef::capture(&file, 0).unwrap();
    /// assert_eq!(snap.checksum, "crc32c:e3069283"); // the CRC-32C check value
    /// ```
    pub fn capture(path: impl AsRef<Path>, now_ms: u64) -> Result<Self, SnapshotError> {
        let path = path.as_ref();
        // Stored as JSON text: a path that is not UTF-8 would be lost.
        if path.to_str().is_none() {
            return Err(SnapshotError::NotUtf8 {
                path: path.to_path_buf(),
            });
        }
        let (checksum, size) = checksum_file(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            checksum,
            size,
            captured_at_ms: now_ms,
        })
    }

    /// Checks that the snapshot is younger than `max_age` and that the file
    /// still has the captured checksum.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = dir.path().join("s");
    /// std::fs::write(&file, b"state").unwrap();
    /// let snap = rebound_recovery::SnapshotRef::capture(&file, 0).unwrap();
    /// std::fs::write(&file, b"STATE").unwrap();
    /// let err = snap.verify(1, Duration::from_secs(60)).unwrap_err();
    /// assert!(err.to_string().contains("corrupt"));
    /// ```
    pub fn verify(&self, now_ms: u64, max_age: std::time::Duration) -> Result<(), SnapshotError> {
        let age_ms = now_ms.saturating_sub(self.captured_at_ms);
        let max_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        if age_ms > max_ms {
            return Err(SnapshotError::Expired {
                path: self.path.clone(),
                age_secs: age_ms / 1000,
                max_age_secs: max_age.as_secs(),
            });
        }
        let (actual, _) = checksum_file(&self.path)?;
        if actual != self.checksum {
            return Err(SnapshotError::Corrupt {
                path: self.path.clone(),
                expected: self.checksum.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// The checksum text and size of a file, read in 1 MiB chunks (snapshots
/// can be large).
fn checksum_file(path: &Path) -> Result<(String, u64), SnapshotError> {
    use std::io::Read;
    let unreadable = |source| SnapshotError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut size) = (0u32, 0u64);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        };
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
    Ok((format!("crc32c:{crc:08x}"), size))
}

/// The checksum text of `bytes`: `crc32c:` and eight hex digits.
///
/// ```
/// assert_eq!(rebound_recovery::model::snapshot::checksum(b""), "crc32c:00000000");
/// ```
pub fn checksum(bytes: &[u8]) -> String {
    format!("crc32c:{:08x}", crc32c::crc32c(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // It was captured, then dropped silently when the journal stored it:
    // the recovery had no snapshot, and its rollback was given up.
    #[test]
    fn a_path_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"snap\xff.img"));
        std::fs::write(&file, b"state").unwrap();
        let err = SnapshotRef::capture(&file, 0).unwrap_err();
        assert!(matches!(err, SnapshotError::NotUtf8 { .. }), "{err}");
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn streamed_checksum_equals_the_one_shot_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let snap = SnapshotRef::capture(&file, 0).unwrap();
        assert_eq!(snap.checksum, checksum(&bytes));
        assert_eq!(snap.size, 3_000_000);
    }

    #[test]
    fn good_corrupt_expired_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap");
        std::fs::write(&file, vec![7u8; 4096]).unwrap();
        let snap = SnapshotRef::capture(&file, 10_000).unwrap();
        assert_eq!(snap.size, 4096);
        snap.verify(20_000, Duration::from_secs(60)).unwrap();

        let expired = snap.verify(10_000 + 61_000, Duration::from_secs(60));
        assert!(matches!(
            expired,
            Err(SnapshotError::Expired { age_secs: 61, .. })
        ));

        // One flipped byte is caught.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        assert!(matches!(
            snap.verify(20_000, Duration::from_secs(60)),
            Err(SnapshotError::Corrupt { .. })
        ));

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            snap.verify(20_000, Duration::from_secs(60)),
            Err(SnapshotError::Unreadable { .. })
        ));
    }
}
