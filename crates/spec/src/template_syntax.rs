//! The template language of config values: what counts as a template, and the small part of
//! Jinja (as minijinja reads it) a config may use.
//!
//! A template is rendered by the server for every task of every environment, from a file any
//! user who may push wrote, so the language is cut down to what cannot run long or grow large:
//! text, `{{ ... }}`, `{# ... #}` and `{% if %}`; the names `env.name`, `vars.NAME`,
//! `task.name`, `task.index` and `port`; `addr("job")` with a name in quotes; comparisons, `and`,
//! `or`, `not`, `in` and `... if ... else ...`. No loops, assignments, filters or arithmetic,
//! so every `{{ }}` shows one value that already exists, and rendering takes time and memory in
//! proportion to the template and its values. The syntax tree is checked before minijinja
//! compiles anything: its compiler folds constants (`{{ "x" * 100000000 }}`) while compiling.

use minijinja::machinery::{self, ast};

use crate::error::shown;
use crate::limits::MAX_TEMPLATE_BYTES;
use crate::names::{NAME_RULE, is_valid_name};
use crate::units::format_bytes;

/// Whether `text` is a template: it holds `{{`, `{%` or `{#` anywhere.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The names a template may use, in the words of every error about one.
pub(crate) const NAMES_HINT: &str =
    "use env.name, vars.NAME, task.name, task.index, port or addr(\"job\")";

/// What the template may do instead of a refused construct.
const LANGUAGE_HINT: &str = "a template may use text, {{ ... }}, {# ... #} and {% if %}";

/// A name a template uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Reference {
    EnvName,
    TaskName,
    TaskIndex,
    Port,
    /// `vars.NAME` or `vars["NAME"]`.
    Var(String),
    /// `addr("job")` (service `None`) or `addr("service/job")`.
    Addr {
        service: Option<String>,
        job: String,
    },
}

impl Reference {
    /// `addr(...)` as written, for messages.
    pub fn addr_text(service: Option<&str>, job: &str) -> String {
        match service {
            Some(service) => format!("addr(\"{}/{}\")", shown(service), shown(job)),
            None => format!("addr(\"{}\")", shown(job)),
        }
    }
}

/// Something found in a template, with the template's line it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AtLine<T> {
    pub line: usize,
    pub item: T,
}

/// Reads `text` as a template of the allowed language: every name it uses (in every branch),
/// or every problem, each with its line in the template.
pub(crate) fn read_template(text: &str) -> Result<Vec<AtLine<Reference>>, Vec<AtLine<String>>> {
    if text.len() > MAX_TEMPLATE_BYTES {
        let message = format!(
            "this value holds {{{{, {{% or {{# and is read as a template, which is at most {}; this one is {}",
            format_bytes(MAX_TEMPLATE_BYTES as u64),
            format_bytes(text.len() as u64)
        );
        return Err(vec![AtLine {
            line: 1,
            item: message,
        }]);
    }
    let tree = machinery::parse(text, "", syntax()).map_err(|error| {
        vec![AtLine {
            line: error.line().unwrap_or(1),
            item: syntax_message(&error),
        }]
    })?;
    let mut walker = Walker::default();
    walker.statement(&tree, 1);
    if walker.problems.is_empty() {
        Ok(walker.references)
    } else {
        Err(walker.problems)
    }
}

/// Jinja's syntax, except that a value keeps its last newline (a `|` block's ends in one).
pub(crate) fn syntax() -> minijinja::syntax::SyntaxConfig {
    minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("Jinja's own delimiters are valid")
}

/// A minijinja error in user terms.
pub(crate) fn syntax_message(error: &minijinja::Error) -> String {
    let detail = error
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| error.kind().to_string());
    // The detail quotes what was found; keep the message one line.
    let detail: String = detail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "template syntax error: {detail} (to write {{{{ or {{% as text, put the value in {{% raw %}}...{{% endraw %}})"
    )
}

#[derive(Default)]
struct Walker {
    references: Vec<AtLine<Reference>>,
    problems: Vec<AtLine<String>>,
}

impl Walker {
    fn problem(&mut self, line: usize, message: String) {
        self.problems.push(AtLine {
            line,
            item: message,
        });
    }

    fn statement(&mut self, statement: &ast::Stmt<'_>, line: usize) {
        let (line, refused) = match statement {
            ast::Stmt::Template(template) => {
                self.statements(&template.children, line);
                return;
            }
            ast::Stmt::EmitRaw(_) => return,
            ast::Stmt::EmitExpr(emit) => {
                self.expression(&emit.expr);
                return;
            }
            ast::Stmt::IfCond(condition) => {
                self.expression(&condition.expr);
                let line = start_line(condition.span());
                self.statements(&condition.true_body, line);
                self.statements(&condition.false_body, line);
                return;
            }
            ast::Stmt::ForLoop(node) => (start_line(node.span()), "{% for %}"),
            ast::Stmt::WithBlock(node) => (start_line(node.span()), "{% with %}"),
            ast::Stmt::Set(node) => (start_line(node.span()), "{% set %}"),
            ast::Stmt::SetBlock(node) => (start_line(node.span()), "{% set %}"),
            ast::Stmt::AutoEscape(node) => (start_line(node.span()), "{% autoescape %}"),
            ast::Stmt::FilterBlock(node) => (start_line(node.span()), "{% filter %}"),
            ast::Stmt::Do(node) => (start_line(node.span()), "{% do %}"),
            // Statements of minijinja features this crate does not turn on (includes, macros,
            // loop controls); present only if another crate turns them on.
            #[allow(unreachable_patterns)]
            _ => (line, "this statement"),
        };
        self.problem(
            line,
            format!("{refused} is not supported in templates; {LANGUAGE_HINT}"),
        );
    }

    fn statements(&mut self, statements: &[ast::Stmt<'_>], line: usize) {
        for statement in statements {
            self.statement(statement, line);
        }
    }

    fn expression(&mut self, expression: &ast::Expr<'_>) {
        let line = start_line(expression.span());
        match expression {
            ast::Expr::Const(_) => {}
            ast::Expr::Var(_) | ast::Expr::GetAttr(_) | ast::Expr::GetItem(_) => {
                self.reference(expression, line)
            }
            ast::Expr::Call(call) => self.call(call, line),
            ast::Expr::UnaryOp(unary) => self.expression(&unary.expr),
            ast::Expr::BinOp(binary) => {
                if let Some(operator) = arithmetic(&binary.op) {
                    let message = format!(
                        "the operator `{operator}` is not supported in templates; write values side by side, such as {{{{ vars.a }}}}-{{{{ vars.b }}}}"
                    );
                    self.problem(line, message);
                } else {
                    self.expression(&binary.left);
                    self.expression(&binary.right);
                }
            }
            ast::Expr::Compare(compare) => {
                self.expression(&compare.expr);
                for operation in &compare.ops {
                    self.expression(&operation.expr);
                }
            }
            ast::Expr::IfExpr(choice) => {
                self.expression(&choice.test_expr);
                self.expression(&choice.true_expr);
                if let Some(otherwise) = &choice.false_expr {
                    self.expression(otherwise);
                }
            }
            ast::Expr::Filter(_) => self.problem(
                line,
                format!("filters (`| name`) are not supported in templates; {NAMES_HINT}"),
            ),
            ast::Expr::Test(_) => self.problem(
                line,
                "tests (`is ...`) are not supported in templates; compare values with == instead"
                    .to_owned(),
            ),
            ast::Expr::Slice(_) | ast::Expr::List(_) | ast::Expr::Tuple(_) | ast::Expr::Map(_) => {
                self.problem(
                    line,
                    format!("lists, maps and slices are not supported in templates; {NAMES_HINT}"),
                )
            }
        }
    }

    /// A name, read through attributes and quoted subscripts: `env.name`, `vars["a-b"]`.
    fn reference(&mut self, expression: &ast::Expr<'_>, line: usize) {
        let Some(parts) = name_parts(expression) else {
            let message = format!(
                "only env, vars and task have fields, and a field in [...] must be in quotes; {NAMES_HINT}"
            );
            self.problem(line, message);
            return;
        };
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let reference = match parts.as_slice() {
            ["env", "name"] => Reference::EnvName,
            ["task", "name"] => Reference::TaskName,
            ["task", "index"] => Reference::TaskIndex,
            ["port"] => Reference::Port,
            ["vars", name] => Reference::Var((*name).to_owned()),
            ["addr"] => {
                let message = "addr is a function: write addr(\"job\") or addr(\"service/job\")";
                self.problem(line, message.to_owned());
                return;
            }
            _ => {
                let message = format!(
                    "unknown name `{}` in template; {NAMES_HINT}",
                    shown(&parts.join("."))
                );
                self.problem(line, message);
                return;
            }
        };
        self.references.push(AtLine {
            line,
            item: reference,
        });
    }

    fn call(&mut self, call: &ast::Call<'_>, line: usize) {
        let is_addr = matches!(&call.expr, ast::Expr::Var(var) if var.id == "addr");
        if !is_addr {
            let message = format!("only addr(\"job\") can be called in templates; {NAMES_HINT}");
            self.problem(line, message);
            return;
        }
        let argument = match call.args.as_slice() {
            [ast::CallArg::Pos(ast::Expr::Const(constant))] => constant.value.as_str(),
            _ => None,
        };
        let Some(target) = argument else {
            let message = "the argument of addr must be one job name in quotes, such as addr(\"db\") or addr(\"service/job\")";
            self.problem(line, message.to_owned());
            return;
        };
        let (service, job) = match target.split_once('/') {
            Some((service, job)) => (Some(service), job),
            None => (None, target),
        };
        if service.is_some_and(|service| !is_valid_name(service)) || !is_valid_name(job) {
            let message = format!(
                "addr(\"{}\"): expected JOB or SERVICE/JOB, each name {}",
                shown(target),
                NAME_RULE.trim_start_matches("expected ")
            );
            self.problem(line, message);
            return;
        }
        self.references.push(AtLine {
            line,
            item: Reference::Addr {
                service: service.map(str::to_owned),
                job: job.to_owned(),
            },
        });
    }
}

/// `a.b["c"]` as `[a, b, c]`; `None` for anything else in the chain.
fn name_parts(expression: &ast::Expr<'_>) -> Option<Vec<String>> {
    match expression {
        ast::Expr::Var(var) => Some(vec![var.id.to_owned()]),
        ast::Expr::GetAttr(attribute) => {
            let mut parts = name_parts(&attribute.expr)?;
            parts.push(attribute.name.to_owned());
            Some(parts)
        }
        ast::Expr::GetItem(item) => {
            let ast::Expr::Const(key) = &item.subscript_expr else {
                return None;
            };
            let mut parts = name_parts(&item.expr)?;
            parts.push(key.value.as_str()?.to_owned());
            Some(parts)
        }
        _ => None,
    }
}

/// The symbol of an operator that computes a new value (and could make a large one).
fn arithmetic(operator: &ast::BinOpKind) -> Option<&'static str> {
    use ast::BinOpKind::*;
    Some(match operator {
        Add => "+",
        Sub => "-",
        Mul => "*",
        Div => "/",
        FloorDiv => "//",
        Rem => "%",
        Pow => "**",
        Concat => "~",
        Eq | Ne | Lt | Lte | Gt | Gte | ScAnd | ScOr | In => return None,
    })
}

fn start_line(span: machinery::Span) -> usize {
    usize::from(span.start_line).max(1)
}

/// Splits a command written as one line the way a shell would, keeping each template tag
/// (`{{ ... }}`, `{% ... %}`, `{# ... #}`) whole: its quotes and spaces belong to the template,
/// and what it renders to stays inside its argument.
pub(crate) fn split_command_line(line: &str) -> Result<Vec<String>, shell_words::ParseError> {
    // Tags are set aside behind markers no config writes (private-use characters).
    const OPEN: char = '\u{f8f0}';
    const CLOSE: char = '\u{f8f1}';
    if !is_template(line) || line.contains([OPEN, CLOSE]) {
        return shell_words::split(line);
    }
    let mut tags = Vec::new();
    let mut protected = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find(['{']) {
        let closing = match rest[start..].get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            Some("{#") => "#}",
            _ => {
                protected.push_str(&rest[..start + 1]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        let Some(length) = tag_length(&rest[start..], closing) else {
            break;
        };
        protected.push_str(&rest[..start]);
        protected.push_str(&format!("{OPEN}{}{CLOSE}", tags.len()));
        tags.push(&rest[start..start + length]);
        rest = &rest[start + length..];
    }
    protected.push_str(rest);
    let argv = shell_words::split(&protected)?;
    Ok(argv
        .into_iter()
        .map(|arg| {
            if !arg.contains(OPEN) {
                return arg;
            }
            let mut restored = String::with_capacity(arg.len());
            let mut pieces = arg.split(OPEN);
            restored.push_str(pieces.next().unwrap_or_default());
            for piece in pieces {
                let (number, after) = piece.split_once(CLOSE).unwrap_or((piece, ""));
                let tag = number.parse::<usize>().ok().and_then(|n| tags.get(n));
                restored.push_str(tag.copied().unwrap_or_default());
                restored.push_str(after);
            }
            restored
        })
        .collect())
}

/// The length of the tag at the start of `text` up to and including `closing`, skipping quoted
/// strings inside it (a `}}` in quotes does not end it); `None` if it does not end.
fn tag_length(text: &str, closing: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in text.char_indices().skip(2) {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None if closing != "#}" && (c == '"' || c == '\'') => quote = Some(c),
            None if text[at..].starts_with(closing) => return Some(at + closing.len()),
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn references(text: &str) -> Vec<Reference> {
        read_template(text)
            .unwrap_or_else(|problems| panic!("{problems:?}"))
            .into_iter()
            .map(|found| found.item)
            .collect()
    }

    fn problems(text: &str) -> Vec<(usize, String)> {
        read_template(text)
            .expect_err("refused")
            .into_iter()
            .map(|found| (found.line, found.item))
            .collect()
    }

    #[test]
    fn templates_are_values_with_tags() {
        assert!(is_template("a{{ b }}"));
        assert!(is_template("{% if x %}"));
        assert!(is_template("{# note #}"));
        assert!(!is_template("a{b}c"));
        assert!(!is_template("%{x}"));
    }

    #[test]
    fn every_name_in_every_branch_is_found() {
        let found = references(
            "{{ env.name }}-{{ vars.db }}{{ vars[\"a-b\"] }}{% if port == 0 %}{{ addr(\"db\") }}{% else %}{{ addr('web/api') }}{% endif %}{{ task.name }}{{ task.index }}",
        );
        assert_eq!(
            found,
            [
                Reference::EnvName,
                Reference::Var("db".into()),
                Reference::Var("a-b".into()),
                Reference::Port,
                Reference::Addr {
                    service: None,
                    job: "db".into()
                },
                Reference::Addr {
                    service: Some("web".into()),
                    job: "api".into()
                },
                Reference::TaskName,
                Reference::TaskIndex,
            ]
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_names_to_use() {
        assert_eq!(
            problems("x\n{{ foo }}"),
            [(
                2,
                "unknown name `foo` in template; use env.name, vars.NAME, task.name, task.index, port or addr(\"job\")".to_owned()
            )]
        );
        assert_eq!(
            problems("{{ env.nmae }}")[0].1.split(';').next(),
            Some("unknown name `env.nmae` in template")
        );
        assert!(
            problems("{{ addr }}")[0]
                .1
                .starts_with("addr is a function")
        );
    }

    #[test]
    fn addr_takes_one_name_in_quotes() {
        for text in [
            "{{ addr(vars.db) }}",
            "{{ addr() }}",
            "{{ addr(\"a\", \"b\") }}",
            "{{ addr(1) }}",
        ] {
            assert!(
                problems(text)[0]
                    .1
                    .starts_with("the argument of addr must be one job name in quotes"),
                "{text}"
            );
        }
        assert!(
            problems("{{ addr(\"a/b/c\") }}")[0]
                .1
                .starts_with("addr(\"a/b/c\"): expected JOB or SERVICE/JOB")
        );
    }

    #[test]
    fn constructs_that_could_run_long_or_grow_are_refused() {
        for (text, start) in [
            (
                "{% for c in vars.x %}{{ c }}{% endfor %}",
                "{% for %} is not supported",
            ),
            ("{% set x = 1 %}", "{% set %} is not supported"),
            (
                "{{ \"x\" * 100000000 }}",
                "the operator `*` is not supported",
            ),
            ("{{ vars.a ~ vars.b }}", "the operator `~` is not supported"),
            ("{{ port + 1 }}", "the operator `+` is not supported"),
            (
                "{{ vars.a | upper }}",
                "filters (`| name`) are not supported",
            ),
            (
                "{{ vars.a is defined }}",
                "tests (`is ...`) are not supported",
            ),
            ("{{ [1, 2] }}", "lists, maps and slices are not supported"),
            ("{{ range(10) }}", "only addr(\"job\") can be called"),
            (
                "{{ vars[env.name] }}",
                "only env, vars and task have fields",
            ),
        ] {
            let found = problems(text);
            assert!(found[0].1.starts_with(start), "{text}: {found:?}");
        }
    }

    #[test]
    fn conditions_and_comparisons_are_allowed() {
        let found = references(
            "{# a note #}{% if env.name == \"production\" and not (port < 1) %}a{% elif \"x\" in vars.list %}b{% endif %}{{ vars.a if vars.b else \"c\" }}",
        );
        assert_eq!(found.len(), 5);
    }

    #[test]
    fn a_long_template_is_refused_before_it_is_read() {
        let text = format!("{{% raw %}}{}{{% endraw %}}", "x".repeat(100_000));
        let found = problems(&text);
        assert!(found[0].1.contains("which is at most 32 KiB"), "{found:?}");
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let found = problems("ok\n{{ vars.x ");
        assert_eq!(found[0].0, 2);
        assert!(
            found[0].1.starts_with("template syntax error: "),
            "{found:?}"
        );
        assert!(problems("{{ .Name }}")[0].1.contains("{% raw %}"));
    }

    #[test]
    fn a_command_line_keeps_its_template_tags_whole() {
        assert_eq!(
            split_command_line(
                "app --db {{ addr(\"db\") }} --name='{{ env.name }} x' {% if port %}-p{% endif %}"
            )
            .unwrap(),
            [
                "app",
                "--db",
                "{{ addr(\"db\") }}",
                "--name={{ env.name }} x",
                "{% if port %}-p{% endif %}"
            ]
        );
        assert_eq!(
            split_command_line("a {{ \"}} b\" }} c").unwrap(),
            ["a", "{{ \"}} b\" }}", "c"]
        );
        assert_eq!(split_command_line("a {b} c").unwrap(), ["a", "{b}", "c"]);
        assert_eq!(split_command_line("a {{ b").unwrap(), ["a", "{{", "b"]);
    }
}
