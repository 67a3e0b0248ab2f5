//! The user a container's process runs as: the image's `USER` (`name`, `uid`, `name:group`,
//! `uid:gid`, or mixed), resolved against `/etc/passwd` and `/etc/group` of the image's own root
//! filesystem, never the host's. An image without `USER` runs as root (uid 0), as images expect.
//!
//! Supplementary groups are the groups of `/etc/group` that list the user by name. A name that
//! does not resolve is an error that says what, where, and how to fix it.
use std::fs;
use std::io::Read;
use std::path::Path;

use crate::error::OciError;

/// Largest `/etc/passwd` or `/etc/group` read.
const MAX_DB_BYTES: u64 = 1 << 20;

/// Who the container's process is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (from `/etc/group`).
    pub additional_gids: Vec<u32>,
    /// The home directory (from `/etc/passwd`), when the user is listed there.
    pub home: Option<String>,
}

/// One line of `/etc/passwd`: name, uid, gid, home.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One line of `/etc/group`: name, gid, members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then_some(())?;
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then_some(())?;
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `user` (the image's `USER`; `None` or empty is root) with the text of the image's
/// `/etc/passwd` and `/etc/group` (`None` when the file is missing). `id` names the container in
/// errors.
///
/// # Errors
/// [`OciError::User`] for a name that is not in the files, or a form that is not
/// `user[:group]`.
pub fn resolve(
    id: &str,
    user: Option<&str>,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ProcessUser, OciError> {
    let user = user.map(str::trim).unwrap_or("");
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let err = |reason: String| OciError::User {
        id: id.to_owned(),
        user: user.to_owned(),
        reason,
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if g.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(err("write USER as user, uid, user:group or uid:gid".into()));
    }
    // The user: a number (listed or not), or a name that must be listed.
    let (uid, listed) = if u.is_empty() {
        if g.is_some() {
            return Err(err("the user part is empty: write user:group or uid:gid".into()));
        }
        (0, users.iter().find(|e| e.uid == 0))
    } else if let Ok(n) = u.parse::<u32>() {
        (n, users.iter().find(|e| e.uid == n))
    } else {
        let entry = users.iter().find(|e| e.name == u).ok_or_else(|| {
            err(format!(
                "user {u:?} is not in the image's /etc/passwd{}: add it to the image (or give a numeric uid:gid in USER)",
                if passwd.is_none() { " (the image has no /etc/passwd)" } else { "" }
            ))
        })?;
        (entry.uid, Some(entry))
    };
    // The primary group: given, else the user's from /etc/passwd, else the same number as the uid
    // would be a guess — root's group 0 is the only safe default.
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| {
                        err(format!(
                            "group {g:?} is not in the image's /etc/group{}: add it to the image (or give a numeric gid in USER)",
                            if group.is_none() { " (the image has no /etc/group)" } else { "" }
                        ))
                    })?
                    .gid
            }
        },
        None => listed.map_or(0, |e| e.gid),
    };
    // Supplementary groups: those listing the user by name (only a listed user has a name).
    let mut additional_gids: Vec<u32> = listed
        .map(|e| {
            groups
                .iter()
                .filter(|gr| gr.members.contains(&e.name) && gr.gid != gid)
                .map(|gr| gr.gid)
                .collect()
        })
        .unwrap_or_default();
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ProcessUser {
        uid,
        gid,
        additional_gids,
        home: listed.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

/// Reads `etc/<name>` of the root filesystem at `rootfs`: only a regular file (a symlink there
/// could point at the host's own files), at most 1 MiB. `None` when it is missing.
///
/// # Errors
/// [`OciError::User`] when it is a symlink or too large; [`OciError::Io`] for a read failure.
fn read_db(id: &str, user: &str, rootfs: &Path, name: &str) -> Result<Option<String>, OciError> {
    let etc = rootfs.join("etc");
    let path = etc.join(name);
    let not_regular = |what: &str| OciError::User {
        id: id.to_owned(),
        user: user.to_owned(),
        reason: format!(
            "the image's {what} is not a regular file (a symlink?): Skiff reads users only from a plain /etc/{name}; fix the image or give a numeric uid:gid"
        ),
    };
    match fs::symlink_metadata(&etc) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_regular("/etc")),
        Err(_) => return Ok(None),
    }
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(not_regular(&format!("/etc/{name}"))),
        Err(_) => return Ok(None),
    }
    let mut text = String::new();
    fs::File::open(&path)
        .and_then(|f| f.take(MAX_DB_BYTES + 1).read_to_string(&mut text))
        .map_err(OciError::io(&path))?;
    if text.len() as u64 > MAX_DB_BYTES {
        return Err(OciError::User {
            id: id.to_owned(),
            user: user.to_owned(),
            reason: format!("the image's /etc/{name} is larger than {MAX_DB_BYTES} bytes"),
        });
    }
    Ok(Some(text))
}

/// [`resolve`] with the files of the root filesystem at `rootfs`. Without a `USER` the files only
/// supply root's home directory, so a file that cannot be read is then ignored.
///
/// # Errors
/// As [`resolve`], and when the image sets `USER` and its files cannot be read.
pub(crate) fn resolve_in(id: &str, user: Option<&str>, rootfs: &Path) -> Result<ProcessUser, OciError> {
    let shown = user.unwrap_or("").trim();
    let (passwd, group) = if shown.is_empty() {
        (
            read_db(id, shown, rootfs, "passwd").ok().flatten(),
            read_db(id, shown, rootfs, "group").ok().flatten(),
        )
    } else {
        (
            read_db(id, shown, rootfs, "passwd")?,
            read_db(id, shown, rootfs, "group")?,
        )
    };
    resolve(id, user, passwd.as_deref(), group.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33:www:/var/www:/bin/false\nbroken line\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app,web\nmedia:x:3000:web\nstaff:x:50:\n";

    fn r(user: Option<&str>) -> Result<ProcessUser, OciError> {
        resolve("c1", user, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn no_user_is_root() {
        let u = r(None).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.home.as_deref(), Some("/root"));
        assert_eq!(r(Some("")).unwrap().uid, 0);
    }

    #[test]
    fn every_user_form_resolves() {
        let app = r(Some("app")).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.additional_gids.clone()),
            (1000, 1000, vec![2000])
        );
        assert_eq!(app.home.as_deref(), Some("/home/app"));
        let web = r(Some("33")).unwrap();
        assert_eq!(
            (web.uid, web.gid, web.additional_gids),
            (33, 33, vec![2000, 3000])
        );
        let named = r(Some("app:staff")).unwrap();
        assert_eq!((named.uid, named.gid), (1000, 50));
        let numeric = r(Some("1234:5678")).unwrap();
        assert_eq!(
            (numeric.uid, numeric.gid, numeric.additional_gids),
            (1234, 5678, vec![])
        );
        assert_eq!(numeric.home, None);
        let mixed = r(Some("4321:media")).unwrap();
        assert_eq!((mixed.uid, mixed.gid), (4321, 3000));
        let unlisted = r(Some("4321")).unwrap();
        assert_eq!((unlisted.uid, unlisted.gid), (4321, 0));
    }

    #[test]
    fn names_that_do_not_resolve_are_clear_errors() {
        let e = r(Some("ghost")).unwrap_err().to_string();
        assert!(
            e.contains("ghost") && e.contains("/etc/passwd") && e.contains("numeric"),
            "{e}"
        );
        let e = r(Some("app:nogroup")).unwrap_err().to_string();
        assert!(e.contains("nogroup") && e.contains("/etc/group"), "{e}");
        let e = resolve("c1", Some("app"), None, None).unwrap_err().to_string();
        assert!(e.contains("has no /etc/passwd"), "{e}");
        assert!(r(Some("a:b:c")).is_err());
        assert!(r(Some(":1")).is_err());
        assert!(r(Some("app:")).is_err());
    }

    #[test]
    fn a_symlinked_passwd_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
        let e = resolve_in("c1", Some("root"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let none = tempfile::tempdir().unwrap();
        assert_eq!(resolve_in("c1", None, none.path()).unwrap().uid, 0);
    }
}
