//! Key files: the cluster keyring on disk, and `dispatch keygen`.
//!
//! A key file is TOML: the id of the primary key, and every key the node
//! holds, each an id (1 to 127) and 32 random bytes in hex:
//!
//! ```toml
//! primary = 1
//!
//! [[keys]]
//! id = 1
//! secret = "…64 hex digits…"
//! ```
//!
//! The primary key seals what the node sends; the others are only
//! accepted. Keys rotate with nodes running, in three steps, each done on
//! every node before the next begins (a running `dispatch node` reads its
//! key file again on SIGHUP; a program calls
//! [`Registry::set_keyring`](crate::Registry::set_keyring)):
//!
//! 1. add the new key (`dispatch keygen --add FILE` appends one with the
//!    next free id) and hand the file to every node;
//! 2. set `primary` to the new key's id everywhere;
//! 3. delete the old key's `[[keys]]` entry everywhere: datagrams sealed
//!    with it are refused from then on.
//!
//! On Unix a key file must be readable by its owner only (mode 0600, as
//! `dispatch keygen` writes it); a file others can read is refused.

use std::fmt::Write as _;
use std::path::Path;

use dispatch_core::keyring::{Key, Keyring, KEY_LEN, MAX_KEY_ID};
use serde::Deserialize;

/// The TOML of a key file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    primary: u8,
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: u8,
    secret: String,
}

/// Reads the keyring of the key file at `path`. The error says what is
/// wrong and what to write instead (the caller adds where the path came
/// from).
pub fn read(path: &Path) -> Result<Keyring, String> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse(&text)
}

/// Parses the text of a key file.
pub fn parse(text: &str) -> Result<Keyring, String> {
    let file: KeyFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        match line {
            Some(l) => format!("line {l}: {}", e.message()),
            None => e.message().to_string(),
        }
    })?;
    let mut primary = None;
    let mut others = Vec::new();
    for entry in &file.keys {
        let bytes = parse_secret(&entry.secret)
            .map_err(|m| format!("the secret of key {}: {m}", entry.id))?;
        let key = Key::new(entry.id, bytes).map_err(|e| e.to_string())?;
        if entry.id == file.primary && primary.is_none() {
            primary = Some(key);
        } else {
            others.push(key);
        }
    }
    let primary = primary.ok_or_else(|| {
        format!(
            "primary = {} names no key in the file: add a [[keys]] entry with id = {} or set primary to one of the ids present",
            file.primary, file.primary
        )
    })?;
    others
        .into_iter()
        .try_fold(Keyring::new(primary), Keyring::with_secondary)
        .map_err(|e| e.to_string())
}

fn parse_secret(text: &str) -> Result<[u8; KEY_LEN], String> {
    let t = text.trim();
    if t.len() != KEY_LEN * 2 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "write {} hex digits (make a key with `dispatch keygen`)",
            KEY_LEN * 2
        ));
    }
    let mut out = [0u8; KEY_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The text of a key file holding `keyring`.
pub fn render(keyring: &Keyring) -> String {
    let mut out = String::from(
        "# Dispatch cluster keyring: keep it secret, readable by its owner only.\n\
         # `primary` seals what this node sends; every key listed is accepted.\n",
    );
    let _ = writeln!(out, "primary = {}", keyring.primary().id());
    for key in std::iter::once(keyring.primary()).chain(keyring.secondary()) {
        let _ = write!(out, "\n[[keys]]\nid = {}\nsecret = \"", key.id());
        for b in key.bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out.push_str("\"\n");
    }
    out
}

/// A new key with `id`, from the operating system's random source.
pub fn new_key(id: u8) -> Result<Key, String> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("the operating system gave no random bytes: {e}"))?;
    Key::new(id, bytes).map_err(|e| e.to_string())
}

/// Writes a new key file at `path` with one key, `id`, as primary; refuses
/// to replace a file that exists. Returns the keyring written.
pub fn create(path: &Path, id: u8) -> Result<Keyring, String> {
    let ring = Keyring::new(new_key(id)?);
    write_private(path, &render(&ring), true)?;
    Ok(ring)
}

/// Adds a new secondary key to the key file at `path`, with `id` or the
/// lowest id it does not hold yet. Returns the new key's id.
pub fn add(path: &Path, id: Option<u8>) -> Result<u8, String> {
    let ring = read(path)?;
    let id = match id {
        Some(id) => id,
        None => (1..=MAX_KEY_ID)
            .find(|&i| ring.get(i).is_none())
            .ok_or("every key id is taken: remove retired keys first")?,
    };
    let ring = ring
        .with_secondary(new_key(id)?)
        .map_err(|e| e.to_string())?;
    write_private(path, &render(&ring), false)?;
    Ok(id)
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "others can read this key file (mode {mode:03o}): run `chmod 600 {}`",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Writes `text` to `path`, readable and writable by its owner only; with
/// `new`, refuses a path that exists.
fn write_private(path: &Path, text: &str, new: bool) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists: a key file is never replaced; choose another path, or add a key with `dispatch keygen --add {}`",
                path.display(),
                path.display()
            )
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_bad_ones_say_what_to_write() {
        let ring = Keyring::new(new_key(2).unwrap())
            .with_secondary(new_key(1).unwrap())
            .unwrap();
        let text = render(&ring);
        assert_eq!(parse(&text).unwrap(), ring);
        let e = parse("primary = 3\n[[keys]]\nid = 1\nsecret = \"00\"\n").unwrap_err();
        assert!(e.contains("key 1") && e.contains("64 hex digits"), "{e}");
        let one = format!("[[keys]]\nid = 1\nsecret = \"{}\"\n", "ab".repeat(32));
        let e = parse(&format!("primary = 3\n{one}")).unwrap_err();
        assert!(e.contains("primary = 3 names no key"), "{e}");
        let e = parse(&format!("primary = 1\n{one}{one}")).unwrap_err();
        assert!(e.contains("two keys have id 1"), "{e}");
        let e = parse("primary = 1\nkeys = 7\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn keygen_writes_a_private_file_never_replaces_one_and_adds_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dispatch-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.key");
        let ring = create(&path, 1).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap(), ring);
        let e = create(&path, 1).unwrap_err();
        assert!(e.contains("never replaced"), "{e}");
        assert_eq!(add(&path, None).unwrap(), 2);
        let ring = read(&path).unwrap();
        assert_eq!(
            (ring.primary().id(), ring.secondary().len()),
            (1, 1),
            "the new key is only accepted until it is promoted"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
