//! A man page in roff: clap_mangen's sections, then NOTES (the help's own text), EXIT
//! STATUS, EXAMPLES and SEE ALSO.

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::manual::{self, Page};

/// One page: clap_mangen's sections, then NOTES (the help's own text), EXIT STATUS,
/// EXAMPLES and SEE ALSO.
pub(crate) fn render(command: &clap::Command, path: &str) -> std::io::Result<Vec<u8>> {
    let man = Man::new(command.clone()).source(format!("mkplan {}", env!("CARGO_PKG_VERSION")));
    let ours = our_sections(command, path);
    // Each section comes with roff's preamble; the page needs it once.
    let preamble = Roff::new().render();
    let mut out = preamble.clone().into_bytes();
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buffer = Vec::new();
        render(&mut buffer)?;
        out.extend_from_slice(buffer.strip_prefix(preamble.as_bytes()).unwrap_or(&buffer));
        std::io::Result::Ok(())
    };
    section(&|w| man.render_title(w))?;
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    section(&|w| ours.to_writer(w))?;
    if command.get_version().is_some() {
        section(&|w| man.render_version_section(w))?;
    }
    Ok(out)
}

fn our_sections(command: &clap::Command, path: &str) -> Roff {
    let mut roff = Roff::new();
    if let Some(notes) = command.get_after_help() {
        // The help text's own layout (lists, aligned columns), kept as written.
        roff.control("SH", ["NOTES"]).control("nf", []);
        for line in notes.to_string().lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    if let Some(page) = manual::page(path) {
        page_sections(&mut roff, page);
    }
    see_also(&mut roff, path);
    roff
}

fn page_sections(roff: &mut Roff, page: &Page) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in page.exit_status {
        roff.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(*meaning)]);
    }
    roff.control("SH", ["EXAMPLES"]);
    for (line, what) in page.examples {
        roff.control("TP", [])
            .text([bold(*line)])
            .text([roman(*what)]);
    }
}

/// A command's page points to mkplan(1) and to its parent's page.
fn see_also(roff: &mut Roff, path: &str) {
    let words: Vec<&str> = path.split_whitespace().collect();
    if words.is_empty() {
        return;
    }
    let mut pages = vec!["mkplan(1)".to_owned()];
    if words.len() > 1 {
        pages.push(format!("mkplan-{}(1)", words[..words.len() - 1].join("-")));
    }
    roff.control("SH", ["SEE ALSO"])
        .text([roman(pages.join(", "))]);
}
