//! Which systemd unit a process runs in, from `/proc/<pid>/cgroup` (the unified `0::`
//! hierarchy, or v1's `name=systemd`): a system service can be stopped with `systemctl`; a
//! scope (a login session) or a user's own service manager cannot, so those are "outside".

use std::path::PathBuf;

pub use mkplan_engine::ports::units::{Placement, UnitOf};
use mkplan_engine::record::users::TokenUser;

/// The real host: `/proc/<pid>/cgroup`.
pub struct CgroupUnits {
    pub proc_dir: PathBuf,
}

impl UnitOf for CgroupUnits {
    fn unit_of(&self, user: &TokenUser) -> Placement {
        let path = self.proc_dir.join(user.pid.to_string()).join("cgroup");
        mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL)
            .map(|text| classify(&text))
            .unwrap_or(Placement::Outside(None))
    }
}

/// Classifies the text of `/proc/<pid>/cgroup`.
pub fn classify(cgroup: &str) -> Placement {
    let lines: Vec<(&str, &str)> = cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    let Some((_, path)) = lines
        .iter()
        .find(|(c, _)| c.is_empty())
        .or_else(|| lines.iter().find(|(c, _)| *c == "name=systemd"))
    else {
        return Placement::Outside(None);
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(manager) = parts.iter().find(|p| p.starts_with("user@")) {
        let last = parts.last().copied().unwrap_or_default();
        return Placement::Outside(Some(format!("{last} of the user manager {manager}")));
    }
    match parts
        .iter()
        .rev()
        .find(|p| p.ends_with(".service") || p.ends_with(".scope"))
    {
        Some(unit) if unit.ends_with(".service") => Placement::Unit((*unit).to_owned()),
        Some(scope) => Placement::Outside(Some((*scope).to_owned())),
        None => Placement::Outside(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_services_are_units_and_the_rest_is_outside() {
        let unit = |u: &str| Placement::Unit(u.to_owned());
        let outside = |o: Option<&str>| Placement::Outside(o.map(str::to_owned));
        for (cgroup, want) in [
            ("0::/system.slice/httpd.service\n", unit("httpd.service")),
            // cgroup v1 with the systemd named hierarchy.
            (
                "12:memory:/system.slice/x.service\n1:name=systemd:/system.slice/myapp.service\n",
                unit("myapp.service"),
            ),
            ("0::/system.slice/app.service/worker\n", unit("app.service")),
            (
                "0::/user.slice/user-1000.slice/session-3.scope\n",
                outside(Some("session-3.scope")),
            ),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/tool.service\n",
                outside(Some("tool.service of the user manager user@1000.service")),
            ),
            // This machine's container: no systemd at all.
            (
                "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n",
                outside(None),
            ),
            ("", outside(None)),
        ] {
            assert_eq!(classify(cgroup), want, "{cgroup}");
        }
    }
}
