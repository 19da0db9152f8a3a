//! Who is at this machine: the name a change made through an open `dev` server is recorded
//! under (the CLI sends it; the server uses its own for the web UI's requests). `USER`, then
//! `LOGNAME`, then the account of this process's user id in `/etc/passwd` (a shell started by
//! `sudo`, cron or a container often sets neither variable), then `uid-N`.

use std::os::unix::fs::MetadataExt;

pub fn local_user() -> String {
    for variable in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(variable)
            && !name.trim().is_empty()
        {
            return name;
        }
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|meta| meta.uid()) else {
        return "unknown".into();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    account_of(&passwd, uid).unwrap_or_else(|| format!("uid-{uid}"))
}

/// The account with `uid` in a passwd file (`name:password:uid:...`).
fn account_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_found_by_its_user_id() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      alice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(account_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(account_of(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(account_of(passwd, 7), None);
        assert!(!local_user().is_empty());
    }
}
