//! The zcrypt sysfs tree of the simulated host, made from the state at every change:
//! `sys/devices/ap/cardXX/` and `…/XX.YYYY/` with the attributes of zcrypt-sysfs.md 1.3 and
//! 1.4, the `sys/bus/ap/devices/` links (1.1) and `mkvps` in the kernel's exact EP11 format
//! (1.5) or CCA format (1.6, `cca_sysfs`). Each change writes a whole new tree into a new
//! generation of the state, which becomes `<root>/sys` only when it is complete
//! (`persist::save`), so a reader never sees half a `mkvps`, nor a `mkvps` that disagrees
//! with the state.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::state::{Card, CurRegister, NewRegister, Queue, SimState, write_new, written};
use crate::{SimError, cca_sysfs};

/// The card's `ap_functions` facility word: EP11 coprocessor `X` (0x04000000), APXA `N`
/// (0x02000000) and full function set `F` (0x00800000) (zcrypt-sysfs.md 1.3).
pub(crate) const AP_FUNCTIONS: u32 = 0x0680_0000;
/// `hwtype` and `raw_hwtype` of a CEX8 (zcrypt-sysfs.md 1.3: 14 = CEX8).
const HWTYPE_CEX8: u32 = 14;

/// Whether the kernel would get an answer to its domain-info query: the queue is online in
/// zcrypt (which needs the card online and both configured, 1.3/1.4) and nothing is
/// check-stopped. Otherwise `mkvps` prints `- -` on both lines (1.5).
pub(crate) fn answers(card: &Card, queue: &Queue) -> bool {
    card.online && card.config && !card.chkstop && queue_online(card, queue) && !queue.chkstop
}

/// What the queue's `online` reads: 1 only while configured and online, with its card
/// online (zcrypt-sysfs.md 1.4).
pub(crate) fn queue_online(card: &Card, queue: &Queue) -> bool {
    queue.online && queue.config && card.online && card.config
}

/// `mkvps` for one queue, byte for byte as `zcrypt_cex4.c` prints it (zcrypt-sysfs.md 1.5):
/// two lines, CUR then NEW, the VP as `0x` and 64 lowercase hex digits, or `-`.
pub(crate) fn mkvps(card: &Card, queue: &Queue) -> String {
    // An interrupted read (zcrypt-sysfs.md 1.6b) looks like no answer at all.
    if !answers(card, queue) || queue.read_fault.is_some() {
        return "WK CUR: - -\nWK NEW: - -\n".to_owned();
    }
    let vp = |vp: Option<[u8; 32]>| match vp {
        Some(vp) => format!("0x{}", hex::encode(vp)),
        None => "-".to_owned(),
    };
    let cur = match queue.cur.state {
        CurRegister::Valid => format!("valid {}", vp(queue.cur.vp)),
        CurRegister::Invalid => "invalid -".to_owned(),
        CurRegister::Unknown => "- -".to_owned(),
    };
    let new = match queue.new.state {
        NewRegister::Empty => "empty -".to_owned(),
        NewRegister::Uncommitted => format!("uncommitted {}", vp(queue.new.vp)),
        NewRegister::Committed => format!("committed {}", vp(queue.new.vp)),
        NewRegister::Unknown => "- -".to_owned(),
    };
    format!("WK CUR: {cur}\nWK NEW: {new}\n")
}

fn flag(value: bool) -> &'static [u8] {
    if value { b"1\n" } else { b"0\n" }
}

/// Writes the whole tree as `<generation>/sys` from `state` (into a new, empty directory).
pub(crate) fn write(generation: &Path, state: &SimState) -> Result<(), SimError> {
    let root = generation;
    let devices = root.join("sys/devices/ap");
    let bus = root.join("sys/bus/ap/devices");
    let drivers = root.join("sys/bus/ap/drivers");
    for dir in [
        &devices,
        &bus,
        &drivers.join("cex4card"),
        &drivers.join("cex4queue"),
    ] {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    for (id, card) in &state.cards {
        let name = format!("card{id}");
        let dir = devices.join(&name);
        fs::create_dir_all(&dir).map_err(|e| SimError::io(&dir, e))?;
        let attributes: [(&str, Vec<u8>); 8] = [
            ("type", format!("{}\n", card.card_type).into_bytes()),
            (
                "ap_functions",
                format!("0x{:08X}\n", ap_functions(&card.card_type)).into_bytes(),
            ),
            ("hwtype", format!("{HWTYPE_CEX8}\n").into_bytes()),
            ("raw_hwtype", format!("{HWTYPE_CEX8}\n").into_bytes()),
            ("depth", b"127\n".to_vec()),
            ("online", flag(card.online && card.config).to_vec()),
            ("config", flag(card.config).to_vec()),
            ("chkstop", flag(card.chkstop).to_vec()),
        ];
        for (file, bytes) in attributes {
            write_new(&dir.join(file), &bytes)?;
        }
        if card.card_type.ends_with('C') {
            // CCA cards only: 8 characters, fetched through the default domain (1.3).
            let number = u8::from_str_radix(id, 16).unwrap_or_default();
            write_new(
                &dir.join("serialnr"),
                format!("93AAB{number:03}\n").as_bytes(),
            )?;
        }
        link(&dir.join("driver"), "../../../bus/ap/drivers/cex4card")?;
        link(&bus.join(&name), &format!("../../../devices/ap/{name}"))?;
    }
    for (name, queue) in &state.apqns {
        let card = card_of(state, name, queue.adapter)?;
        let attributes = [
            ("online", flag(queue_online(card, queue)).to_vec()),
            ("config", flag(queue.config).to_vec()),
            ("chkstop", flag(queue.chkstop).to_vec()),
            ("mkvps", mkvps(card, queue).into_bytes()),
        ];
        write_queue(generation, name, queue.adapter, attributes)?;
    }
    for (name, queue) in &state.cca_apqns {
        let card = card_of(state, name, queue.adapter)?;
        let attributes = [
            (
                "online",
                flag(cca_sysfs::queue_online(card, queue)).to_vec(),
            ),
            ("config", flag(queue.config).to_vec()),
            ("chkstop", flag(queue.chkstop).to_vec()),
            (
                "mkvps",
                cca_sysfs::mkvps(card, queue, state.cca_sysfs).into_bytes(),
            ),
        ];
        write_queue(generation, name, queue.adapter, attributes)?;
    }
    Ok(())
}

/// The card of the APQN `name` on `adapter`.
fn card_of<'s>(state: &'s SimState, name: &str, adapter: u8) -> Result<&'s Card, SimError> {
    let card_id = format!("{adapter:02x}");
    state
        .cards
        .get(&card_id)
        .ok_or_else(|| SimError::Format(format!("APQN {name} has no card {card_id}")))
}

/// One queue's directory under its card, with its attributes, driver and bus links.
fn write_queue(
    generation: &Path,
    name: &str,
    adapter: u8,
    attributes: [(&str, Vec<u8>); 4],
) -> Result<(), SimError> {
    let card_id = format!("{adapter:02x}");
    let dir = generation
        .join("sys/devices/ap")
        .join(format!("card{card_id}"))
        .join(name);
    fs::create_dir_all(&dir).map_err(|e| SimError::io(&dir, e))?;
    for (file, bytes) in attributes {
        write_new(&dir.join(file), &bytes)?;
    }
    link(&dir.join("driver"), "../../../../bus/ap/drivers/cex4queue")?;
    link(
        &generation.join("sys/bus/ap/devices").join(name),
        &format!("../../../devices/ap/card{card_id}/{name}"),
    )
}

/// The facility word of a card of `card_type`: a CCA coprocessor (`…C`) has `D`
/// (0x10000000) where an EP11 one has `X`, both with `N` and `F` (zcrypt-sysfs.md 1.3).
fn ap_functions(card_type: &str) -> u32 {
    if card_type.ends_with('C') {
        0x1280_0000
    } else {
        AP_FUNCTIONS
    }
}

/// A relative symlink, like sysfs has, so the root can be moved.
pub(crate) fn link(at: &Path, target: &str) -> Result<(), SimError> {
    match fs::read_link(at) {
        Ok(existing) if existing == Path::new(target) => return Ok(()),
        Ok(_) => fs::remove_file(at).map_err(|e| SimError::io(at, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SimError::io(at, e)),
    }
    symlink(target, at).map_err(|e| SimError::io(at, e))?;
    written();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Register;

    fn card() -> Card {
        Card {
            card_type: "CEX8P".into(),
            online: true,
            config: true,
            chkstop: false,
        }
    }

    fn queue(cur: Register<CurRegister>, new: Register<NewRegister>) -> Queue {
        Queue {
            adapter: 10,
            domain: 17,
            token: "ep11".into(),
            online: true,
            config: true,
            chkstop: false,
            cur,
            new,
            read_fault: None,
        }
    }

    #[test]
    fn mkvps_has_the_kernels_exact_lines() {
        let vp = [0xabu8; 32];
        let hex = "ab".repeat(32);
        let valid = Register {
            state: CurRegister::Valid,
            vp: Some(vp),
        };
        let empty = Register {
            state: NewRegister::Empty,
            vp: None,
        };
        let committed = Register {
            state: NewRegister::Committed,
            vp: Some(vp),
        };
        let uncommitted = Register {
            state: NewRegister::Uncommitted,
            vp: Some(vp),
        };
        let invalid = Register {
            state: CurRegister::Invalid,
            vp: None,
        };
        assert_eq!(
            mkvps(&card(), &queue(valid, empty)),
            format!("WK CUR: valid 0x{hex}\nWK NEW: empty -\n")
        );
        assert_eq!(
            mkvps(&card(), &queue(invalid, committed)),
            format!("WK CUR: invalid -\nWK NEW: committed 0x{hex}\n")
        );
        assert_eq!(
            mkvps(&card(), &queue(valid, uncommitted)),
            format!("WK CUR: valid 0x{hex}\nWK NEW: uncommitted 0x{hex}\n")
        );
        let mut offline = queue(valid, committed);
        offline.online = false;
        // That mkplan's sysfs reader takes every such state: tests/sim.rs.
        assert_eq!(mkvps(&card(), &offline), "WK CUR: - -\nWK NEW: - -\n");
    }
}
