//! Templates: minijinja with strict undefined, the plan's `vars`, `tokens`, `services`,
//! `backups`, `change` and `name` in scope, tokens' APQNs and WKVPs normalized
//! (`template_values.rs`). Secrets are never template inputs: the tokens' `pin` entries are
//! removed from the scope. The engine evaluates `when` at run time with
//! [`evaluate_condition`] in the scope the validated plan carries.

use std::ops::Range;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;
use crate::suggest::did_you_mean;
use crate::template_values::{normalize_tokens, template_value};

/// Names the scope defines itself; a variable may not take one of them.
pub const RESERVED_NAMES: &[&str] = &["vars", "tokens", "services", "backups", "change", "name"];

/// Bounds the work one template may do, so no plan can make validation hang.
const FUEL: u64 = 100_000;

/// The one environment every template and condition is evaluated in: undefined names are
/// errors, and work is bounded.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// Evaluates a step's `when` expression in `scope` (a validated plan's `template_scope`),
/// with minijinja's truthiness: `false`, `0`, `""`, `none` and empty lists and maps are
/// false. An undefined name is an error, not false.
pub fn evaluate_condition(scope: &Value, expr: &str) -> Result<bool, String> {
    let env = environment();
    let describe = |e: minijinja::Error| match e.detail() {
        Some(detail) => format!("`{expr}`: {}: {detail}", e.kind()),
        None => format!("`{expr}`: {}", e.kind()),
    };
    let compiled = env.compile_expression(expr).map_err(describe)?;
    let value = compiled.eval(template_value(scope)).map_err(describe)?;
    // Strict mode refuses undefined operands, but a whole expression that is undefined
    // (`restart_apps`, `vars.missing`) comes back as a value whose truthiness is false.
    if value.is_undefined() {
        return Err(format!("`{expr}` is undefined"));
    }
    Ok(value.is_true())
}

pub struct Templates {
    env: Environment<'static>,
    scope: Value,
}

impl Templates {
    /// The scope of a plan: its variables at the top level and under `vars`, and its
    /// sections (without PIN sources).
    pub fn new(plan: &Value) -> Self {
        let mut scope = Map::new();
        let section = |key: &str| plan.get(key).cloned().unwrap_or(Value::Object(Map::new()));
        if let Some(vars) = plan.get("vars").and_then(Value::as_object) {
            for (k, v) in vars {
                scope.insert(k.clone(), v.clone());
            }
        }
        let mut tokens = section("tokens");
        if let Some(tokens) = tokens.as_object_mut() {
            for token in tokens.values_mut() {
                if let Some(token) = token.as_object_mut() {
                    token.remove("pin");
                }
            }
        }
        normalize_tokens(&mut tokens);
        scope.insert("vars".into(), section("vars"));
        scope.insert("tokens".into(), tokens);
        scope.insert("services".into(), section("services"));
        scope.insert("backups".into(), section("backups"));
        scope.insert("change".into(), section("change"));
        scope.insert(
            "name".into(),
            plan.get("name").cloned().unwrap_or(Value::Null),
        );
        Self {
            env: environment(),
            scope: Value::Object(scope),
        }
    }

    /// The scope templates are rendered in (after [`Templates::set`]).
    pub fn scope(&self) -> &Value {
        &self.scope
    }

    /// Replaces `backups` in the scope (after their own templates are rendered).
    pub fn set(&mut self, key: &str, value: Value) {
        if let Some(scope) = self.scope.as_object_mut() {
            scope.insert(key.to_owned(), value);
        }
    }

    /// Renders `text`; text without template syntax is returned as it is.
    pub fn render(&self, text: &str, pointer: &str) -> Result<String, Diagnostic> {
        if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
            return Ok(text.to_owned());
        }
        let template = self
            .env
            .template_from_str(text)
            .map_err(|e| self.error(&e, pointer))?;
        if let Some(d) = self.undefined(template.undeclared_variables(true), text, pointer) {
            return Err(d);
        }
        template
            .render(template_value(&self.scope))
            .map_err(|e| self.error(&e, pointer))
    }

    /// Checks a `when` expression compiles and uses only defined names. Its value is
    /// decided at run time.
    pub fn check_expression(&self, expr: &str, pointer: &str) -> Result<(), Diagnostic> {
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| self.error(&e, pointer))?;
        if let Some(d) = self.undefined(compiled.undeclared_variables(true), expr, pointer) {
            return Err(d);
        }
        compiled
            .eval(template_value(&self.scope))
            .map(|_| ())
            .map_err(|e| self.error(&e, pointer))
    }

    fn undefined(
        &self,
        names: std::collections::HashSet<String>,
        text: &str,
        pointer: &str,
    ) -> Option<Diagnostic> {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        for name in names {
            let mut at = &self.scope;
            let mut walked = Vec::new();
            for part in name.split('.') {
                match at.get(part) {
                    Some(next) => {
                        at = next;
                        walked.push(part);
                    }
                    None => {
                        let options: Vec<&str> = at
                            .as_object()
                            .map(|o| o.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let shown = if walked.is_empty() {
                            part.to_owned()
                        } else {
                            format!("{}.{part}", walked.join("."))
                        };
                        let mut d = Diagnostic::error(
                            "template",
                            format!("undefined name `{shown}` in template"),
                        )
                        .with_pointer(pointer);
                        if let Some(range) = find_name(text, &name) {
                            d = d.within_value(range);
                        }
                        if walked.is_empty() && part == "pin" {
                            d = d.with_note("PINs are never template inputs");
                        }
                        d = match did_you_mean(part, options.iter().copied()) {
                            Some(best) => d.with_hint(format!("did you mean `{best}`?")),
                            None if walked.is_empty() => d.with_hint(
                                "templates see `vars` (also at the top level), `tokens`, `services`, `backups`, `change` and `name`",
                            ),
                            None => d.with_hint(format!(
                                "`{}` has: {}",
                                walked.join("."),
                                options.join(", ")
                            )),
                        };
                        return Some(d);
                    }
                }
            }
        }
        None
    }

    fn error(&self, error: &minijinja::Error, pointer: &str) -> Diagnostic {
        let mut message = format!("template error: {}", error.kind());
        if let Some(detail) = error.detail() {
            message.push_str(&format!(": {detail}"));
        }
        let d = Diagnostic::error("template", message).with_pointer(pointer);
        match error.range() {
            Some(range) => d.within_value(range),
            None => d,
        }
    }
}

/// Where the dotted `name` is first written in `text` as a whole name.
fn find_name(text: &str, name: &str) -> Option<Range<usize>> {
    let part_of_name = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    text.match_indices(name)
        .map(|(at, _)| at..at + name.len())
        .find(|r| {
            !text[..r.start].ends_with(part_of_name) && !text[r.end..].starts_with(part_of_name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates() -> Templates {
        Templates::new(&json!({
            "name": "n",
            "vars": {"backup_root": "/b"},
            "tokens": {"ep11": {"slot": 4, "pin": {"env": "X"}, "wkvp": {"new": "0xab"}}},
        }))
    }

    #[test]
    fn renders_vars_and_sections() {
        let t = templates();
        assert_eq!(t.render("{{ backup_root }}/x", "").unwrap(), "/b/x");
        assert_eq!(t.render("{{ tokens.ep11.wkvp.new }}", "").unwrap(), "0xab");
        assert_eq!(t.render("plain", "").unwrap(), "plain");
    }

    #[test]
    fn apqns_and_wkvps_render_normalized_whatever_the_notation() {
        let t = Templates::new(&json!({
            "tokens": {"ep11": {
                "apqns": [{"adapter": "010", "domain": "0x30"}, "0b.0011", {"adapter": 0, "domain": 255}],
                "wkvp": {"current": "0X9B7D4E0A11F35C8822D0B6E4A7F1C3D9", "new": "9b7d4e0a11f35c8822d0b6e4a7f1c3d9"},
            }},
        }));
        let render = |text: &str| t.render(text, "/x").unwrap();
        assert_eq!(
            render("{{ tokens.ep11.apqns }}"),
            "[08.0030 (adapter 8, domain 48), 0b.0011 (adapter 11, domain 17), 00.00ff (adapter 0, domain 255)]"
        );
        assert_eq!(
            render(
                "{% for a in tokens.ep11.apqns %}{{ a.lszcrypt }}={{ a.adapter }}/{{ a.domain }} {% endfor %}"
            ),
            "08.0030=8/48 0b.0011=11/17 00.00ff=0/255 "
        );
        assert_eq!(
            render("{{ tokens.ep11.apqns[0] }}"),
            "08.0030 (adapter 8, domain 48)"
        );
        assert_eq!(render("{{ tokens.ep11.apqns | length }}"), "3");
        assert_eq!(
            render("{{ tokens.ep11.apqns[1] | tojson }}"),
            r#"{"adapter": 11, "domain": 17, "lszcrypt": "0b.0011"}"#
        );
        assert_eq!(
            render("{{ tokens.ep11.wkvp.current }} {{ tokens.ep11.wkvp.new }}"),
            "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9 0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"
        );
        assert_eq!(
            evaluate_condition(t.scope(), "tokens.ep11.apqns[0].adapter == 8"),
            Ok(true)
        );
        assert_eq!(
            evaluate_condition(t.scope(), "tokens.ep11.apqns[0].domain == 0x30"),
            Ok(true)
        );
    }

    #[test]
    fn undefined_names_are_named_with_a_suggestion() {
        let t = templates();
        let e = t.render("{{ backup_rot }}", "/x").unwrap_err().to_string();
        assert!(
            e.contains("`backup_rot`") && e.contains("backup_root"),
            "{e}"
        );
        let e = t
            .render("{{ tokens.ep11.wkvp.neww }}", "/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokens.ep11.wkvp.neww"), "{e}");
        assert!(t.render("{{ tokens.ep11.pin }}", "/x").is_err());
    }

    #[test]
    fn errors_point_into_the_template() {
        let t = templates();
        let text = "say {{ tokens.ep11.wkvp.new } now";
        let d = t.render(text, "/x").unwrap_err();
        let range = d_range(&d, text);
        assert!(range.start >= 4 && range.end <= text.len(), "{range:?}");
        assert_eq!(
            find_name("a {{ backup_rootx }} {{ backup_root }}", "backup_root"),
            Some(24..35)
        );
        assert_eq!(
            find_name("{{ tokens.ep11.x }}", "tokens.ep11.x"),
            Some(3..16)
        );
        assert_eq!(find_name("{{ xtokens }}", "tokens"), None);
    }

    /// The value range a diagnostic points at, read back through its JSON form.
    fn d_range(d: &Diagnostic, text: &str) -> Range<usize> {
        use crate::source::SourceFile;
        use crate::yaml;
        let source = SourceFile::new("t.yaml", format!("x: {text}\n"));
        let doc = yaml::load(&source).unwrap();
        let json = d.clone().locate(&doc.spans, &source).to_json(&source);
        let column = |key: &str| json[key].as_u64().unwrap() as usize;
        column("column") - 4..column("end_column") - 4
    }

    #[test]
    fn conditions_use_minijinja_truthiness_and_strict_names() {
        let scope =
            json!({"restart": true, "n": 0, "list": [], "name": "x", "vars": {"on": "yes"}});
        assert_eq!(evaluate_condition(&scope, "restart"), Ok(true));
        assert_eq!(evaluate_condition(&scope, "n"), Ok(false));
        assert_eq!(evaluate_condition(&scope, "list"), Ok(false));
        assert_eq!(
            evaluate_condition(&scope, "name == 'x' and vars.on"),
            Ok(true)
        );
        assert_eq!(evaluate_condition(&scope, "not restart"), Ok(false));
        for undefined in ["restart_apps", "vars.off", "restart_apps or restart"] {
            let e = evaluate_condition(&scope, undefined).unwrap_err();
            assert!(e.contains(undefined) && e.contains("undefined"), "{e}");
        }
        assert!(evaluate_condition(&scope, "restart ==").is_err());
        let e = evaluate_condition(&scope, "range(100000) | map('string') | join | length > 0")
            .unwrap_err();
        assert!(e.contains("fuel"), "{e}");
    }

    #[test]
    fn runaway_templates_stop() {
        let t = templates();
        assert!(
            t.render(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                "/x"
            )
            .is_err()
        );
    }
}
