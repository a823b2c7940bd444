//! Where a run was started or resumed from (PCI DSS 10.2.2, "origination of event"): the
//! session's user, host, terminal and SSH client. Captured once when the run starts and again
//! at each resume (a resume may come from another session), journaled with `run_started` and
//! `resumed`; every later event of that stretch carries it in the report.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The session mkplan ran in. Only names and addresses: no environment is copied whole, so
/// nothing secret a variable might hold reaches the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The real user id of the mkplan process.
    pub uid: u32,
    /// The login name (`$LOGNAME`, else `$USER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Who ran `sudo` (`$SUDO_USER`), when mkplan runs under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// The machine's host name (`uname -n`).
    pub host: String,
    /// The controlling terminal (`/dev/pts/3`); absent without one (cron, a pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    /// The SSH client (`198.51.100.7 port 50022`, from `$SSH_CONNECTION` or `$SSH_CLIENT`);
    /// absent when the session is not over SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_client: Option<String>,
}

impl Origin {
    /// One line for people: `uid 0 (login alice, sudo by alice) on zlx01, tty /dev/pts/3,
    /// ssh 198.51.100.7 port 50022`.
    pub fn describe(&self) -> String {
        let mut who = vec![];
        if let Some(login) = &self.login {
            who.push(format!("login {login}"));
        }
        if let Some(sudo) = &self.sudo_user {
            who.push(format!("sudo by {sudo}"));
        }
        let mut line = format!("uid {}", self.uid);
        if !who.is_empty() {
            line.push_str(&format!(" ({})", who.join(", ")));
        }
        line.push_str(&format!(" on {}", self.host));
        if let Some(tty) = &self.tty {
            line.push_str(&format!(", tty {tty}"));
        }
        if let Some(ssh) = &self.ssh_client {
            line.push_str(&format!(", ssh {ssh}"));
        }
        line
    }
}

/// A user or host name from the environment, kept only if it looks like one (printable, no
/// spaces, at most 64 bytes): anything else is not recorded rather than copied blindly.
pub fn plausible_name(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_graphic() && c != '"');
    ok.then(|| value.to_owned())
}

/// The client of `$SSH_CONNECTION` (`client port server port`) or `$SSH_CLIENT` (`client port
/// server-port`): its address and port, only when they parse as such.
pub fn ssh_client(value: &str) -> Option<String> {
    let mut fields = value.split_ascii_whitespace();
    let address: IpAddr = fields.next()?.parse().ok()?;
    let port: u16 = fields.next()?.parse().ok()?;
    Some(format!("{address} port {port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_client_takes_address_and_port_only() {
        assert_eq!(
            ssh_client("198.51.100.7 50022 192.0.2.1 22").as_deref(),
            Some("198.51.100.7 port 50022")
        );
        assert_eq!(
            ssh_client("2001:db8::7 50022 22").as_deref(),
            Some("2001:db8::7 port 50022")
        );
        assert_eq!(ssh_client("hunter2"), None);
        assert_eq!(ssh_client("198.51.100.7 notaport"), None);
        assert_eq!(ssh_client(""), None);
    }

    #[test]
    fn names_that_do_not_look_like_names_are_dropped() {
        assert_eq!(plausible_name("alice").as_deref(), Some("alice"));
        assert_eq!(plausible_name("a b"), None);
        assert_eq!(plausible_name(""), None);
        assert_eq!(plausible_name(&"x".repeat(65)), None);
        assert_eq!(plausible_name("evil\u{1b}[2J"), None);
    }

    #[test]
    fn describes_every_part_it_has() {
        let origin = Origin {
            uid: 0,
            login: Some("alice".into()),
            sudo_user: Some("alice".into()),
            host: "zlx01".into(),
            tty: Some("/dev/pts/3".into()),
            ssh_client: Some("198.51.100.7 port 50022".into()),
        };
        assert_eq!(
            origin.describe(),
            "uid 0 (login alice, sudo by alice) on zlx01, tty /dev/pts/3, ssh 198.51.100.7 port 50022"
        );
        let bare = Origin {
            uid: 1000,
            login: None,
            sudo_user: None,
            host: "h".into(),
            tty: None,
            ssh_client: None,
        };
        assert_eq!(bare.describe(), "uid 1000 on h");
    }
}
