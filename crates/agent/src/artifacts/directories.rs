//! The engine unpacks an archive only into a directory that exists, and a fixed image rarely
//! has the artifact's `path`: a small tar of that directory and its parents, unpacked at `/`
//! first, makes it. Written by hand (ustar directory entries), as no tar library is needed
//! anywhere else.

/// One tar block.
const BLOCK: usize = 512;

/// An uncompressed tar holding a directory entry (mode 755) for `path` and each of its parents,
/// such as `srv/` and `srv/app/` for `/srv/app`; empty for `/`. Each entry's name must fit the
/// 100 bytes of a ustar name (the spec bounds `path`).
pub(crate) fn directories_tar(path: &str) -> Vec<u8> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Vec::new();
    }
    let mut archive = Vec::with_capacity((segments.len() + 2) * BLOCK);
    for end in 1..=segments.len() {
        let name = format!("{}/", segments[..end].join("/"));
        archive.extend_from_slice(&directory_header(&name));
    }
    // The end of an archive: two empty blocks.
    archive.resize(archive.len() + 2 * BLOCK, 0);
    archive
}

/// The header block of a directory entry named `name`.
fn directory_header(name: &str) -> [u8; BLOCK] {
    let mut header = [0u8; BLOCK];
    let put = |header: &mut [u8; BLOCK], at: usize, value: &[u8]| {
        header[at..at + value.len()].copy_from_slice(value);
    };
    let name = name.as_bytes();
    put(&mut header, 0, &name[..name.len().min(100)]);
    put(&mut header, 100, b"0000755\0"); // mode
    put(&mut header, 108, b"0000000\0"); // uid
    put(&mut header, 116, b"0000000\0"); // gid
    put(&mut header, 124, b"00000000000\0"); // size
    put(&mut header, 136, b"00000000000\0"); // mtime
    put(&mut header, 156, b"5"); // type: directory
    put(&mut header, 257, b"ustar\0"); // magic
    put(&mut header, 263, b"00"); // version
    // The checksum is computed with its own field as spaces.
    put(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_parent_gets_an_entry_and_the_root_none() {
        assert!(directories_tar("/").is_empty());
        let archive = directories_tar("/srv/app/");
        assert_eq!(archive.len(), 4 * BLOCK);
        assert_eq!(&archive[..5], b"srv/\0");
        assert_eq!(&archive[BLOCK..BLOCK + 9], b"srv/app/\0");
        assert!(archive[2 * BLOCK..].iter().all(|&b| b == 0));
    }

    #[test]
    fn headers_carry_a_valid_checksum() {
        let header = directory_header("app/");
        let stored = std::str::from_utf8(&header[148..154]).unwrap();
        let mut blanked = header;
        blanked[148..156].copy_from_slice(b"        ");
        let sum: u32 = blanked.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        assert_eq!(header[156], b'5');
    }

    #[test]
    fn the_system_tar_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("dirs.tar");
        std::fs::write(&archive, directories_tar("/opt/my-app")).unwrap();
        let listed = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(listed.status.success(), "{listed:?}");
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(
            text.contains("opt/my-app/") && text.starts_with('d'),
            "{text}"
        );
    }
}
