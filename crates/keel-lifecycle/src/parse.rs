//! Reading a lifecycle definition from YAML.
//!
//! [`parse_definition`] turns the YAML text of one `lifecycle:` document
//! into a validated [`Definition`]. It does not stop at the first mistake:
//! every problem found is reported at once, each with the line and column it
//! was written at, the path of the value (`states.training.retry.backoff`)
//! and a message that says what is wrong and what to do about it. Problems
//! come sorted by position.
//!
//! The checks cover the shape of the document (keys, types, names), the
//! references between states (initial state, transition and catch targets,
//! in the same machine: the top level or one branch of a `parallel` state),
//! the built-in events each kind of state needs (`action_succeeded`,
//! `parallel_done`, `map_done`), guard and assign expressions, durations,
//! cron lines, dead ends and states that cannot be reached.
//!
//! A YAML syntax error stops everything: it comes back as a single problem
//! at the position the YAML parser gave.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::cron::Cron;
use crate::definition::{
    ActionDef, BranchDef, Definition, Guard, MapDef, Mode, RetryPolicy, ScheduleDef, StateDef,
    TimerDef, TransitionDef, builtin_events,
};
use crate::duration::parse_duration;
use crate::expr;
use keel_core::suggest;
use keel_core::yaml::{self, Node, Span, Value};

/// One mistake in a definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the value, e.g. `states.training.retry.max_attempts`;
    /// empty for a YAML syntax error.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// Every problem found in a definition, sorted by position. Displays as one
/// `LINE:COL: PATH: MESSAGE` line per problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DefinitionErrors {
    pub problems: Vec<Problem>,
}

impl fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Parses and validates one lifecycle definition. `known_actions` are the
/// action kinds that may appear under `action:` (e.g. `command`, `http`,
/// `emit` and those the domains registered).
/// Checks an event name sent by a client with the definition's rule, so a
/// typo gets a clear 400 before it reaches an instance.
pub fn check_event_name(name: &str) -> Result<(), String> {
    if NameKind::Event.is_valid(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid event name `{name}`: {}",
            NameKind::Event.rule()
        ))
    }
}

pub fn parse_definition(src: &str, known_actions: &[&str]) -> Result<Definition, DefinitionErrors> {
    let root = yaml::parse(src).map_err(|e| DefinitionErrors {
        problems: vec![Problem {
            line: e.line,
            column: e.column,
            path: String::new(),
            message: format!("invalid YAML: {}; fix the syntax here", e.message),
        }],
    })?;
    let mut checker = Checker {
        src,
        known_actions,
        problems: Vec::new(),
        suggest_budget: suggest::BUDGET,
    };
    let definition = checker.definition(&root);
    let mut problems = checker.problems;
    match definition {
        Some(d) if problems.is_empty() => Ok(d),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            problems.dedup();
            if problems.is_empty() {
                // Unreachable in practice: a part is only dropped with a problem.
                problems.push(Problem {
                    line: root.span.line,
                    column: root.span.column,
                    path: String::new(),
                    message: "the definition is incomplete".to_string(),
                });
            }
            Err(DefinitionErrors { problems })
        }
    }
}

const ROOT_KEYS: &[&str] = &["lifecycle", "mode", "description", "initial", "states"];
const STATE_KEYS: &[&str] = &[
    "description",
    "terminal",
    "on",
    "action",
    "retry",
    "catch",
    "timeout",
    "schedule",
    "parallel",
    "map",
];
const TRANSITION_KEYS: &[&str] = &["target", "guard", "assign"];
const RETRY_KEYS: &[&str] = &["max_attempts", "backoff", "multiplier", "max_backoff"];
const CATCH_KEYS: &[&str] = &["target"];
const TIMEOUT_KEYS: &[&str] = &["after", "event"];
const SCHEDULE_KEYS: &[&str] = &["cron", "event"];
const BRANCH_KEYS: &[&str] = &["initial", "states"];
const MAP_KEYS: &[&str] = &["items", "lifecycle", "key"];
const COMMAND_KEYS: &[&str] = &["run", "env", "cwd"];
const HTTP_KEYS: &[&str] = &["url", "method", "headers", "body"];
const EMIT_KEYS: &[&str] = &["event", "lifecycle", "key", "data"];

const GUARD_ROOTS: &[&str] = &["event", "context"];
const MAP_KEY_ROOTS: &[&str] = &["item", "index", "event", "context"];

const ACTION_SUCCEEDED: &str = builtin_events::ACTION_SUCCEEDED;
const ACTION_FAILED: &str = builtin_events::ACTION_FAILED;
const PARALLEL_DONE: &str = builtin_events::PARALLEL_DONE;
const MAP_DONE: &str = builtin_events::MAP_DONE;

/// A string-keyed entry of a mapping.
/// How an action kind with a one-string shorthand is written.
struct Shorthand {
    kind: &'static str,
    /// The key the shorthand string stands for (`run`, `url`).
    key: &'static str,
    keys: &'static [&'static str],
    hint: &'static str,
    missing: &'static str,
    expected: &'static str,
}

struct Entry<'n> {
    name: &'n str,
    key: &'n Node,
    value: &'n Node,
}

fn find<'a, 'n>(entries: &'a [Entry<'n>], name: &str) -> Option<&'a Entry<'n>> {
    entries.iter().find(|e| e.name == name)
}

/// A state name used somewhere, to be checked against its machine.
struct Ref {
    name: String,
    span: Span,
    path: String,
    /// "transition target" or "catch target".
    what: &'static str,
}

/// A state as read, with what the machine-level checks need.
struct Draft {
    def: StateDef,
    key: Span,
    path: String,
    refs: Vec<Ref>,
    /// A transition or the state body could not be read, so reachability
    /// is not known for sure.
    opaque: bool,
}

/// What kind of name a string must be.
#[derive(Clone, Copy)]
enum NameKind {
    State,
    Event,
    Branch,
    Lifecycle,
    Field,
}

impl NameKind {
    fn noun(self) -> &'static str {
        match self {
            NameKind::State => "state name",
            NameKind::Event => "event name",
            NameKind::Branch => "branch name",
            NameKind::Lifecycle => "lifecycle name",
            NameKind::Field => "context field name",
        }
    }

    fn is_valid(self, s: &str) -> bool {
        let mut chars = s.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        if s.chars().count() > 128 {
            return false;
        }
        match self {
            NameKind::Lifecycle => {
                first.is_ascii_alphanumeric()
                    && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            }
            NameKind::Field => {
                (first.is_ascii_alphabetic() || first == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            NameKind::State | NameKind::Event | NameKind::Branch => {
                (first.is_ascii_alphabetic() || first == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            }
        }
    }

    fn rule(self) -> &'static str {
        match self {
            NameKind::Lifecycle => {
                "it must start with a letter or digit, continue with letters, digits, `_`, `.` \
                 or `-`, and be at most 128 characters long"
            }
            NameKind::Field => {
                "it must start with a letter or `_`, continue with letters, digits or `_`, and \
                 be at most 128 characters long"
            }
            NameKind::State | NameKind::Event | NameKind::Branch => {
                "it must start with a letter or `_`, continue with letters, digits, `_`, `.` or \
                 `-`, and be at most 128 characters long"
            }
        }
    }
}

/// `a mapping`, `an integer`, `null`.
fn a(kind: &str) -> String {
    match kind {
        "null" => "null".to_string(),
        k if k.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {k}"),
        k => format!("a {k}"),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Names for a message, the first [`LIST_MAX`] of them.
fn list(names: &[&str]) -> String {
    if names.len() <= LIST_MAX {
        names.join(", ")
    } else {
        format!(
            "{}, … ({} more)",
            names[..LIST_MAX].join(", "),
            names.len() - LIST_MAX
        )
    }
}

/// Most names listed in one message.
const LIST_MAX: usize = 30;

fn float_literal(f: f64) -> String {
    format!("{f:?}")
}

struct Checker<'a> {
    src: &'a str,
    known_actions: &'a [&'a str],
    problems: Vec<Problem>,
    /// What is left of [`suggest::BUDGET`].
    suggest_budget: usize,
}

impl Checker<'_> {
    /// `; did you mean `x`?` for the closest candidate, if one is close.
    fn did_you_mean(&mut self, word: &str, candidates: &[&str]) -> String {
        suggest::closest(word, candidates, &mut self.suggest_budget)
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default()
    }

    fn report(&mut self, span: Span, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: span.line,
            column: span.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str, hint: &str) {
        let message = format!("expected {expected}, found {}; {hint}", a(node.kind()));
        self.report(node.span, path, message);
    }

    /// The string-keyed entries of a mapping. Keys outside `allowed` are
    /// reported (with `owner` naming what the mapping is) and left out.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: Option<&[&str]>,
        owner: &str,
        hint: &str,
    ) -> Option<Vec<Entry<'n>>> {
        let Value::Map(pairs) = &node.value else {
            self.type_error(node, path, "a mapping", hint);
            return None;
        };
        let mut entries = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Value::Str(name) = &key.value else {
                self.report(
                    key.span,
                    path,
                    format!(
                        "keys of {owner} must be strings, found {}; quote the key",
                        a(key.kind())
                    ),
                );
                continue;
            };
            if let Some(allowed) = allowed
                && !allowed.contains(&name.as_str())
            {
                let suggestion = self.did_you_mean(name, allowed);
                self.report(
                    key.span,
                    &join(path, name),
                    format!(
                        "unknown key `{name}` in {owner}; allowed keys are: {}{}",
                        list(allowed),
                        suggestion
                    ),
                );
                continue;
            }
            entries.push(Entry { name, key, value });
        }
        Some(entries)
    }

    fn missing(&mut self, at: Span, path: &str, key: &str, what_to_do: &str) {
        self.report(
            at,
            &join(path, key),
            format!("missing `{key}`: {what_to_do}"),
        );
    }

    fn string<'n>(&mut self, node: &'n Node, path: &str, hint: &str) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) => Some(s),
            _ => {
                self.type_error(node, path, "a string", hint);
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str, hint: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(node, path, "`true` or `false`", hint);
                None
            }
        }
    }

    fn name_str(&mut self, text: &str, span: Span, path: &str, kind: NameKind) -> bool {
        if kind.is_valid(text) {
            return true;
        }
        self.report(
            span,
            path,
            format!("invalid {} `{text}`: {}", kind.noun(), kind.rule()),
        );
        false
    }

    /// A name written as a value (`initial: x`, `event: e`).
    fn name(&mut self, node: &Node, path: &str, kind: NameKind) -> Option<String> {
        let hint = format!("write {} such as `my_name`", a(kind.noun()));
        let text = self.string(node, path, &hint)?;
        self.name_str(text, node.span, path, kind)
            .then(|| text.to_string())
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => {
                self.type_error(
                    node,
                    path,
                    "a duration",
                    "write a number with a unit, e.g. `10s`, `5m` or `7d`",
                );
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.report(node.span, path, message);
                None
            }
        }
    }

    /// Where the character at `byte_offset` of a string node's text was
    /// written: exact when the scalar sits on one line, plain or quoted
    /// without escapes; otherwise the start of the node.
    fn inner_span(&self, node: &Node, text: &str, byte_offset: usize) -> Span {
        let Some(rest) = self.src.get(node.span.offset..) else {
            return node.span;
        };
        let line = rest.split(['\n', '\r']).next().unwrap_or_default();
        let lead = match line.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &line[1..];
                let escaped = text.contains(q) || (q == '"' && text.contains('\\'));
                let exact =
                    !escaped && inner.starts_with(text) && inner[text.len()..].starts_with(q);
                if !exact {
                    return node.span;
                }
                1
            }
            _ if line.starts_with(text) => 0,
            _ => return node.span,
        };
        let mut cut = byte_offset.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        Span {
            line: node.span.line,
            column: node.span.column + lead + text[..cut].chars().count(),
            offset: node.span.offset + lead + cut,
        }
    }

    /// An expression: a YAML string is parsed; with `literals`, other
    /// scalars become the expression of that literal.
    fn expression(
        &mut self,
        node: &Node,
        path: &str,
        roots: &[&str],
        literals: bool,
    ) -> Option<Guard> {
        let source = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) if literals => i.to_string(),
            Value::Null if literals => "null".to_string(),
            Value::Float(f) if literals => {
                if !f.is_finite() {
                    self.report(
                        node.span,
                        path,
                        "expressions have no infinite or NaN numbers; write a finite number",
                    );
                    return None;
                }
                float_literal(*f)
            }
            _ => {
                let hint = format!(
                    "write an expression string over {}, e.g. \"{}.score > 0.5\"",
                    list(roots),
                    roots.first().copied().unwrap_or("event")
                );
                self.type_error(node, path, "an expression", &hint);
                return None;
            }
        };
        match expr::parse(&source, roots) {
            Ok(expr) => Some(Guard { source, expr }),
            Err(e) => {
                let at = if matches!(node.value, Value::Str(_)) {
                    self.inner_span(node, &source, e.offset)
                } else {
                    node.span
                };
                // The parser's own message already lists the roots when a
                // name is unknown; say it once.
                let hint = if e.message.contains("expressions start from") {
                    String::new()
                } else {
                    format!("; expressions may use {}", list(roots))
                };
                self.report(at, path, format!("invalid expression: {}{hint}", e.message));
                None
            }
        }
    }

    // ----- document -------------------------------------------------------

    fn definition(&mut self, root: &Node) -> Option<Definition> {
        if root.value == Value::Null {
            self.report(
                root.span,
                "",
                "the definition is empty; write at least `lifecycle: NAME`, `initial: STATE` \
                 and `states:` with one state",
            );
            return None;
        }
        let entries = self.mapping(
            root,
            "",
            Some(ROOT_KEYS),
            "a lifecycle definition",
            "a definition is a mapping with `lifecycle`, `initial` and `states`",
        )?;

        let name = match find(&entries, "lifecycle") {
            Some(e) => self.name(e.value, "lifecycle", NameKind::Lifecycle),
            None => {
                self.missing(
                    root.span,
                    "",
                    "lifecycle",
                    "name this lifecycle, e.g. `lifecycle: churn-model`",
                );
                None
            }
        };
        let mode = match find(&entries, "mode") {
            None => Some(Mode::Durable),
            Some(e) => match e.value.as_str() {
                Some("durable") => Some(Mode::Durable),
                Some("ephemeral") => Some(Mode::Ephemeral),
                Some(other) => {
                    let suggestion = self.did_you_mean(other, &["durable", "ephemeral"]);
                    self.report(
                        e.value.span,
                        "mode",
                        format!(
                            "unknown mode `{other}`; use `durable` (the default) or `ephemeral`{}",
                            suggestion
                        ),
                    );
                    None
                }
                None => {
                    self.type_error(
                        e.value,
                        "mode",
                        "a string",
                        "use `durable` (the default) or `ephemeral`",
                    );
                    None
                }
            },
        };
        let description = match find(&entries, "description") {
            None => Some(None),
            Some(e) => self
                .string(e.value, "description", "quote the text")
                .map(|s| Some(s.to_string())),
        };
        let initial = match find(&entries, "initial") {
            Some(e) => self
                .string(e.value, "initial", "name the state new instances start in")
                .map(|s| (s.to_string(), e.value.span)),
            None => {
                let first = match root.get("states").map(|s| &s.value) {
                    Some(Value::Map(states)) => states.first().and_then(|(k, _)| k.as_str()),
                    _ => None,
                };
                let example = first.unwrap_or("waiting_for_data");
                self.missing(
                    root.span,
                    "",
                    "initial",
                    &format!("name the state new instances start in, e.g. `initial: {example}`"),
                );
                None
            }
        };
        let states = match find(&entries, "states") {
            Some(e) => self.machine(e.key, e.value, "states", initial.as_ref(), "initial", false),
            None => {
                self.missing(
                    root.span,
                    "",
                    "states",
                    "define the states under `states:`, e.g. `states: {start: {terminal: true}}`",
                );
                None
            }
        };
        Some(Definition {
            name: name?,
            mode: mode?,
            description: description?,
            initial: initial?.0,
            states: states?,
        })
    }

    /// The states of one machine (the top level or a parallel branch),
    /// with references, reachability and, for branches, a terminal state
    /// checked.
    fn machine(
        &mut self,
        states_key: &Node,
        node: &Node,
        path: &str,
        initial: Option<&(String, Span)>,
        initial_path: &str,
        in_branch: bool,
    ) -> Option<Vec<StateDef>> {
        let hint = "list the states as a mapping: `states: {NAME: {…}, …}`";
        let entries = self.mapping(node, path, None, "`states`", hint)?;
        if entries.is_empty() {
            self.report(
                states_key.span,
                path,
                "no states are defined; add at least one state under `states:`",
            );
            return None;
        }
        let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
        let mut drafts = Vec::with_capacity(entries.len());
        for e in &entries {
            let state_path = join(path, e.name);
            self.name_str(e.name, e.key.span, &state_path, NameKind::State);
            drafts.push(self.state(e.name, e.key, e.value, &state_path, in_branch));
        }

        let states_list = list(&names);
        let name_set: HashSet<&str> = names.iter().copied().collect();
        let known = |n: &str| name_set.contains(n);
        let mut initial_known = false;
        if let Some((init, span)) = initial {
            initial_known = known(init);
            if !initial_known {
                let suggestion = self.did_you_mean(init, &names);
                self.report(
                    *span,
                    initial_path,
                    format!(
                        "unknown initial state `{init}`; states are: {states_list}{}",
                        suggestion
                    ),
                );
            }
        }
        // With a dangling reference, what is reachable is a guess: skip that check.
        let mut dangling = false;
        for draft in &drafts {
            for r in &draft.refs {
                if !known(&r.name) {
                    dangling = true;
                    let suggestion = self.did_you_mean(&r.name, &names);
                    self.report(
                        r.span,
                        &r.path,
                        format!(
                            "unknown state `{}` in {}; states are: {states_list}{}",
                            r.name, r.what, suggestion
                        ),
                    );
                }
            }
        }

        if let Some((init, _)) = initial
            && initial_known
            && !dangling
            && !drafts.iter().any(|d| d.opaque)
        {
            let index: HashMap<&str, usize> =
                names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
            let mut seen = HashSet::from([init.as_str()]);
            let mut queue = VecDeque::from([init.as_str()]);
            while let Some(name) = queue.pop_front() {
                let Some(&i) = index.get(name) else { continue };
                for r in &drafts[i].refs {
                    if seen.insert(r.name.as_str()) {
                        queue.push_back(r.name.as_str());
                    }
                }
            }
            for (i, draft) in drafts.iter().enumerate() {
                if !seen.contains(names[i]) {
                    self.report(
                        draft.key,
                        &draft.path,
                        format!(
                            "state `{}` is unreachable: no transition or catch leads to it from \
                             the initial state `{init}`; add a transition to it or remove it",
                            names[i]
                        ),
                    );
                }
            }
        }

        if in_branch && !drafts.iter().any(|d| d.def.terminal) {
            self.report(
                states_key.span,
                path,
                "this branch has no terminal state, so it never finishes and `parallel_done` is \
                 never sent; add a state with `terminal: true`",
            );
        }

        Some(drafts.into_iter().map(|d| d.def).collect())
    }

    // ----- states ---------------------------------------------------------

    fn state(&mut self, name: &str, key: &Node, node: &Node, path: &str, in_branch: bool) -> Draft {
        let mut draft = Draft {
            def: StateDef {
                name: name.to_string(),
                description: None,
                terminal: false,
                on: Vec::new(),
                action: None,
                retry: None,
                catch: None,
                timeout: None,
                schedule: None,
                parallel: None,
                map: None,
            },
            key: key.span,
            path: path.to_string(),
            refs: Vec::new(),
            opaque: false,
        };
        let empty = Vec::new();
        let entries = if node.value == Value::Null {
            empty
        } else {
            let owner = format!("state `{name}`");
            let hint =
                "a state is a mapping, e.g. `{on: {EVENT: NEXT_STATE}}` or `{terminal: true}`";
            match self.mapping(node, path, Some(STATE_KEYS), &owner, hint) {
                Some(entries) => entries,
                None => {
                    draft.opaque = true;
                    return draft;
                }
            }
        };
        let has = |k: &str| find(&entries, k).is_some();
        let key_of = |k: &str| find(&entries, k).map(|e| (e.key.span, join(path, k)));

        if let Some(e) = find(&entries, "description") {
            draft.def.description = self
                .string(e.value, &join(path, "description"), "quote the text")
                .map(str::to_string);
        }
        let mut terminal_broken = false;
        if let Some(e) = find(&entries, "terminal") {
            let value = self.boolean(e.value, &join(path, "terminal"), "write `terminal: true`");
            terminal_broken = value.is_none();
            draft.def.terminal = value.unwrap_or(false);
        }
        let terminal = draft.def.terminal;

        // Events written under `on`, valid or not, with their key spans.
        let mut events: Vec<(String, Span)> = Vec::new();
        let mut on_broken = false;
        if let Some(e) = find(&entries, "on") {
            on_broken = !self.on(e.value, &join(path, "on"), &mut draft, &mut events);
        }
        let handles = |ev: &str| events.iter().any(|(n, _)| n == ev);

        if let Some(e) = find(&entries, "action") {
            draft.def.action = self.action(e.key, e.value, &join(path, "action"));
        }
        if let Some(e) = find(&entries, "retry") {
            draft.def.retry = self.retry(e.key, e.value, &join(path, "retry"));
        }
        if let Some(e) = find(&entries, "catch") {
            let p = join(path, "catch");
            if let Some((target, span)) = self.catch(e.value, &p) {
                draft.def.catch = Some(target.clone());
                draft.refs.push(Ref {
                    name: target,
                    span,
                    path: p,
                    what: "catch target",
                });
            } else {
                draft.opaque = true;
            }
        }
        let mut timer_event = None;
        if let Some(e) = find(&entries, "timeout") {
            let p = join(path, "timeout");
            let (timer, event) = self.timer(e.key, e.value, &p);
            draft.def.timeout = timer;
            timer_event = event.map(|(name, span)| (name, span, join(&p, "event")));
        }
        let mut schedule_event = None;
        if let Some(e) = find(&entries, "schedule") {
            let p = join(path, "schedule");
            if in_branch {
                self.report(
                    e.key.span,
                    &p,
                    "a state inside a parallel branch cannot have a `schedule`; put the schedule \
                     on a top-level state",
                );
            } else {
                let (schedule, event) = self.schedule(e.key, e.value, &p);
                draft.def.schedule = schedule;
                schedule_event = event.map(|(name, span)| (name, span, join(&p, "event")));
            }
        }
        if let Some(e) = find(&entries, "parallel") {
            let p = join(path, "parallel");
            if in_branch {
                self.report(
                    e.key.span,
                    &p,
                    "a state inside a parallel branch cannot itself be `parallel`; flatten the \
                     branches into the enclosing parallel state",
                );
            } else {
                draft.def.parallel = self.parallel(e.key, e.value, &p);
            }
        }
        if let Some(e) = find(&entries, "map") {
            let p = join(path, "map");
            if in_branch {
                self.report(
                    e.key.span,
                    &p,
                    "a state inside a parallel branch cannot be a `map`; move the map to a \
                     top-level state",
                );
            } else {
                draft.def.map = self.map(e.key, e.value, &p);
            }
        }

        // Rules between keys.
        if terminal {
            for k in ["on", "action", "timeout", "schedule", "parallel", "map"] {
                if let Some((span, p)) = key_of(k) {
                    self.report(
                        span,
                        &p,
                        format!(
                            "terminal state `{name}` cannot have `{k}`: nothing happens in a \
                             terminal state; remove `{k}` or `terminal: true`"
                        ),
                    );
                }
            }
        }
        let kinds: Vec<&str> = ["action", "parallel", "map"]
            .into_iter()
            .filter(|k| has(k))
            .collect();
        if kinds.len() > 1 {
            for k in &kinds[1..] {
                if let Some((span, p)) = key_of(k) {
                    self.report(
                        span,
                        &p,
                        format!(
                            "`{}` and `{k}` cannot be combined in one state: a state runs an \
                             action, parallel branches or a map, not several; move `{k}` to a \
                             state of its own",
                            kinds[0]
                        ),
                    );
                }
            }
        }
        for k in ["retry", "catch"] {
            if !has("action")
                && let Some((span, p)) = key_of(k)
            {
                self.report(
                    span,
                    &p,
                    format!(
                        "`{k}` only applies to a state that runs an `action`, and state `{name}` \
                         has none; add an `action` or remove `{k}`"
                    ),
                );
            }
        }
        if !terminal && !terminal_broken && !on_broken {
            if let Some((span, p)) = key_of("action") {
                if !handles(ACTION_SUCCEEDED) {
                    self.report(
                        span,
                        &p,
                        format!(
                            "state `{name}` runs an action but has no `{ACTION_SUCCEEDED}` \
                             transition; add `on: {{{ACTION_SUCCEEDED}: NEXT_STATE}}`"
                        ),
                    );
                }
                if !handles(ACTION_FAILED) && !has("catch") {
                    self.report(
                        span,
                        &p,
                        format!(
                            "state `{name}` runs an action but does not handle its failure; add \
                             `on: {{{ACTION_FAILED}: STATE}}` or `catch: STATE`"
                        ),
                    );
                }
            }
            if let Some((span, p)) = key_of("parallel")
                && !in_branch
                && !handles(PARALLEL_DONE)
            {
                self.report(
                    span,
                    &p,
                    format!(
                        "parallel state `{name}` has no `{PARALLEL_DONE}` transition; add \
                         `on: {{{PARALLEL_DONE}: NEXT_STATE}}`"
                    ),
                );
            }
            if let Some((span, p)) = key_of("map")
                && !in_branch
                && !handles(MAP_DONE)
            {
                self.report(
                    span,
                    &p,
                    format!(
                        "map state `{name}` has no `{MAP_DONE}` transition; add \
                         `on: {{{MAP_DONE}: NEXT_STATE}}`"
                    ),
                );
            }
            let has_transitions = !events.is_empty();
            if !has_transitions && !has("action") && !has("parallel") && !has("map") {
                self.report(
                    key.span,
                    path,
                    format!(
                        "state `{name}` is a dead end: add `on:` transitions or `terminal: true`"
                    ),
                );
            }
            let handled: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
            for (event, span, p) in [timer_event, schedule_event].into_iter().flatten() {
                if !handles(&event) {
                    let suggestion = self.did_you_mean(&event, &handled);
                    self.report(
                        span,
                        &p,
                        format!(
                            "event `{event}` has no transition in `on` of state `{name}`, so it \
                             would do nothing; add `on: {{{event}: STATE}}`{}",
                            suggestion
                        ),
                    );
                }
            }
        }
        // Built-in events that this state never receives.
        let sources = [
            (ACTION_SUCCEEDED, "action", "runs an `action`"),
            (ACTION_FAILED, "action", "runs an `action`"),
            (PARALLEL_DONE, "parallel", "are `parallel`"),
            (MAP_DONE, "map", "are a `map`"),
        ];
        for (event, span) in &events {
            if let Some((_, source, what)) = sources.iter().find(|(e, ..)| e == event)
                && !has(source)
            {
                self.report(
                    *span,
                    &join(&join(path, "on"), event),
                    format!(
                        "`{event}` is only sent to states that {what}; state `{name}` is not one, \
                         so this transition is never taken: remove it or add `{source}`"
                    ),
                );
            }
        }
        if has("action")
            && has("catch")
            && let Some((_, span)) = events.iter().find(|(e, _)| e == ACTION_FAILED)
        {
            self.report(
                *span,
                &join(&join(path, "on"), ACTION_FAILED),
                format!(
                    "`{ACTION_FAILED}` is never sent to state `{name}` because its `catch` \
                     handles a failed action; remove this transition or the `catch`"
                ),
            );
        }
        draft
    }

    /// `on:`; returns false when it is not a mapping.
    fn on(
        &mut self,
        node: &Node,
        path: &str,
        draft: &mut Draft,
        events: &mut Vec<(String, Span)>,
    ) -> bool {
        let hint = "write `on: {EVENT: NEXT_STATE}`";
        let Some(entries) = self.mapping(node, path, None, "`on`", hint) else {
            draft.opaque = true;
            return false;
        };
        if matches!(&node.value, Value::Map(pairs) if pairs.len() != entries.len()) {
            // Keys that are not strings were reported; what they lead to is unknown.
            draft.opaque = true;
            return false;
        }
        for e in &entries {
            let p = join(path, e.name);
            self.name_str(e.name, e.key.span, &p, NameKind::Event);
            events.push((e.name.to_string(), e.key.span));
            match &e.value.value {
                Value::Seq(items) => {
                    if items.is_empty() {
                        self.report(
                            e.value.span,
                            &p,
                            format!(
                                "no alternatives are listed for `{}`; add at least one \
                                 `{{target: STATE, guard: EXPR}}`",
                                e.name
                            ),
                        );
                        draft.opaque = true;
                    }
                    let mut unguarded: Option<usize> = None;
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{p}[{i}]");
                        if let Some(first) = unguarded {
                            self.report(
                                item.span,
                                &ip,
                                format!(
                                    "this alternative is never tried: alternative {} before it \
                                     has no guard and always wins; give it a `guard` or move \
                                     it last",
                                    first + 1
                                ),
                            );
                            unguarded = None;
                        }
                        let guarded = self.transition(e.name, item, &ip, draft);
                        if !guarded && unguarded.is_none() && i + 1 < items.len() {
                            unguarded = Some(i);
                        }
                    }
                }
                _ => {
                    self.transition(e.name, e.value, &p, draft);
                }
            }
        }
        true
    }

    /// One transition: `STATE` or `{target, guard, assign}`. Returns
    /// whether it has a guard.
    fn transition(&mut self, event: &str, node: &Node, path: &str, draft: &mut Draft) -> bool {
        let mut t = TransitionDef {
            event: event.to_string(),
            target: String::new(),
            guard: None,
            assign: Vec::new(),
        };
        let mut guarded = false;
        match &node.value {
            Value::Str(target) => {
                t.target = target.clone();
                draft.refs.push(Ref {
                    name: target.clone(),
                    span: node.span,
                    path: path.to_string(),
                    what: "transition target",
                });
            }
            Value::Map(_) => {
                let owner = "a transition";
                let hint = "";
                let Some(entries) = self.mapping(node, path, Some(TRANSITION_KEYS), owner, hint)
                else {
                    return false;
                };
                match find(&entries, "target") {
                    Some(e) => {
                        let p = join(path, "target");
                        match self.string(e.value, &p, "name the state to go to") {
                            Some(target) => {
                                t.target = target.to_string();
                                draft.refs.push(Ref {
                                    name: target.to_string(),
                                    span: e.value.span,
                                    path: p,
                                    what: "transition target",
                                });
                            }
                            None => draft.opaque = true,
                        }
                    }
                    None => {
                        self.missing(
                            node.span,
                            path,
                            "target",
                            "name the state this transition goes to, e.g. `target: STATE`",
                        );
                        draft.opaque = true;
                    }
                }
                if let Some(e) = find(&entries, "guard") {
                    guarded = true;
                    t.guard = self.expression(e.value, &join(path, "guard"), GUARD_ROOTS, false);
                }
                if let Some(e) = find(&entries, "assign") {
                    t.assign = self.assign(e.value, &join(path, "assign"));
                }
            }
            Value::Null => {
                self.report(
                    node.span,
                    path,
                    format!("no target state is given for `{event}`; write `{event}: STATE`"),
                );
                draft.opaque = true;
            }
            _ => {
                self.type_error(
                    node,
                    path,
                    "a target state, a mapping `{target: STATE, guard: EXPR}` or a list of such \
                     mappings",
                    "write e.g. `EVENT: NEXT_STATE`",
                );
                draft.opaque = true;
            }
        }
        draft.def.on.push(t);
        guarded
    }

    fn assign(&mut self, node: &Node, path: &str) -> Vec<(String, Guard)> {
        let hint = "write `assign: {FIELD: EXPR}`";
        let Some(entries) = self.mapping(node, path, None, "`assign`", hint) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in &entries {
            let p = join(path, e.name);
            let valid = self.name_str(e.name, e.key.span, &p, NameKind::Field);
            let value = self.expression(e.value, &p, GUARD_ROOTS, true);
            if let (true, Some(g)) = (valid, value) {
                out.push((e.name.to_string(), g));
            }
        }
        out
    }

    // ----- actions --------------------------------------------------------

    fn action(&mut self, key: &Node, node: &Node, path: &str) -> Option<ActionDef> {
        let example = self
            .known_actions
            .first()
            .map(|k| format!("e.g. `action: {{{k}: …}}`"))
            .unwrap_or_else(|| "with one action kind".to_string());
        let hint = format!("write the action as a mapping, {example}");
        let entries = self.mapping(node, path, None, "`action`", &hint)?;
        let mut kind: Option<&Entry<'_>> = None;
        let mut timeout = None;
        let mut ok = true;
        for e in &entries {
            let p = join(path, e.name);
            if e.name == "timeout" {
                timeout = self.duration(e.value, &p);
                if timeout == Some(Duration::ZERO) {
                    self.report(
                        e.value.span,
                        &p,
                        "an action timeout of zero fails every attempt; use a positive \
                         duration such as `10m`",
                    );
                }
                ok &= timeout.is_some();
            } else if self.known_actions.contains(&e.name) {
                if let Some(first) = kind {
                    self.report(
                        e.key.span,
                        &p,
                        format!(
                            "an action has exactly one kind, but both `{}` and `{}` are given; \
                             keep one and move the other to a state of its own",
                            first.name, e.name
                        ),
                    );
                    ok = false;
                } else {
                    kind = Some(e);
                }
            } else {
                let suggestion = self.did_you_mean(e.name, self.known_actions);
                self.report(
                    e.key.span,
                    &p,
                    format!(
                        "unknown action kind `{}`; known kinds are: {} (besides them, an action \
                         takes only `timeout`){}",
                        e.name,
                        list(self.known_actions),
                        suggestion
                    ),
                );
                ok = false;
            }
        }
        let Some(kind) = kind else {
            if ok {
                self.report(
                    key.span,
                    path,
                    format!(
                        "the action names no kind; add one of: {}",
                        list(self.known_actions)
                    ),
                );
            }
            return None;
        };
        let p = join(path, kind.name);
        let config = match kind.name {
            "command" => self.command(kind.value, &p),
            "http" => self.http(kind.value, &p),
            "emit" => self.emit(kind.value, &p),
            _ => Some(kind.value.to_json()),
        }?;
        Some(ActionDef {
            kind: kind.name.to_string(),
            config,
            timeout: if ok { timeout } else { None },
        })
    }

    fn non_empty_string(&mut self, node: &Node, path: &str, hint: &str) -> Option<String> {
        let s = self.string(node, path, hint)?;
        if s.trim().is_empty() {
            self.report(node.span, path, format!("this is empty; {hint}"));
            return None;
        }
        Some(s.to_string())
    }

    /// A mapping of names to scalars (`env`, `headers`).
    fn scalar_map(&mut self, node: &Node, path: &str, example: &str) -> bool {
        let hint = format!("write e.g. `{example}`");
        let Some(entries) = self.mapping(node, path, None, "this mapping", &hint) else {
            return false;
        };
        let mut ok = true;
        for e in &entries {
            if matches!(e.value.value, Value::Seq(_) | Value::Map(_)) {
                self.type_error(e.value, &join(path, e.name), "a string", "quote the value");
                ok = false;
            }
        }
        ok
    }

    fn command(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        let shape = Shorthand {
            kind: "command",
            key: "run",
            keys: COMMAND_KEYS,
            hint: "write the command line, e.g. `command: \"python train.py\"`",
            missing: "give the command line, e.g. `run: \"python train.py\"`",
            expected: "a command line or a mapping `{run, env, cwd}`",
        };
        self.shorthand(node, path, &shape, |p, entries| {
            let mut ok = true;
            if let Some(e) = find(entries, "env") {
                ok &= p.scalar_map(e.value, &join(path, "env"), "env: {MODE: fast}");
            }
            if let Some(e) = find(entries, "cwd") {
                ok &= p
                    .string(e.value, &join(path, "cwd"), "give a directory path")
                    .is_some();
            }
            ok
        })
    }

    fn http(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        let shape = Shorthand {
            kind: "http",
            key: "url",
            keys: HTTP_KEYS,
            hint: "write the URL, e.g. `http: \"https://example.com/hook\"`",
            missing: "give the URL to call, e.g. `url: \"https://example.com/hook\"`",
            expected: "a URL or a mapping `{url, method, headers, body}`",
        };
        self.shorthand(node, path, &shape, |p, entries| {
            let mut ok = true;
            if let Some(e) = find(entries, "method") {
                ok &= p
                    .non_empty_string(e.value, &join(path, "method"), "write e.g. `method: POST`")
                    .is_some();
            }
            if let Some(e) = find(entries, "headers") {
                ok &= p.scalar_map(
                    e.value,
                    &join(path, "headers"),
                    "headers: {Authorization: \"Bearer …\"}",
                );
            }
            ok
        })
    }

    /// An action written either as one string (`command: "…"`, the value
    /// of `shape.key`) or as a mapping that must have `shape.key`; `more`
    /// checks the mapping's other keys.
    fn shorthand(
        &mut self,
        node: &Node,
        path: &str,
        shape: &Shorthand,
        more: impl FnOnce(&mut Self, &[Entry<'_>]) -> bool,
    ) -> Option<serde_json::Value> {
        match &node.value {
            Value::Str(_) => {
                let text = self.non_empty_string(node, path, shape.hint)?;
                Some(serde_json::json!({ shape.key: text }))
            }
            Value::Map(_) => {
                let owner = format!("`{}`", shape.kind);
                let entries = self.mapping(node, path, Some(shape.keys), &owner, "")?;
                let mut ok = match find(&entries, shape.key) {
                    Some(e) => self
                        .non_empty_string(e.value, &join(path, shape.key), shape.hint)
                        .is_some(),
                    None => {
                        self.missing(node.span, path, shape.key, shape.missing);
                        false
                    }
                };
                ok &= more(self, &entries);
                ok.then(|| node.to_json())
            }
            _ => {
                self.type_error(node, path, shape.expected, shape.hint);
                None
            }
        }
    }

    fn emit(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        let hint = "write e.g. `emit: {event: model_ready, lifecycle: deploy}`";
        let entries = self.mapping(node, path, Some(EMIT_KEYS), "`emit`", hint)?;
        let mut ok = true;
        match find(&entries, "event") {
            Some(e) => {
                ok &= self
                    .name(e.value, &join(path, "event"), NameKind::Event)
                    .is_some()
            }
            None => {
                self.missing(
                    node.span,
                    path,
                    "event",
                    "name the event to send, e.g. `event: model_ready`",
                );
                ok = false;
            }
        }
        if let Some(e) = find(&entries, "lifecycle") {
            ok &= self
                .name(e.value, &join(path, "lifecycle"), NameKind::Lifecycle)
                .is_some();
        }
        if let Some(e) = find(&entries, "key") {
            ok &= self
                .non_empty_string(
                    e.value,
                    &join(path, "key"),
                    "give the instance key to send to",
                )
                .is_some();
        }
        ok.then(|| node.to_json())
    }

    fn retry(&mut self, key: &Node, node: &Node, path: &str) -> Option<RetryPolicy> {
        let hint = "write e.g. `retry: {max_attempts: 3, backoff: 10s}`";
        let entries = self.mapping(node, path, Some(RETRY_KEYS), "`retry`", hint)?;
        let max_attempts = match find(&entries, "max_attempts") {
            Some(e) => {
                let p = join(path, "max_attempts");
                match e.value.value {
                    Value::Int(n) if n >= 1 && n <= i64::from(u32::MAX) => u32::try_from(n).ok(),
                    Value::Int(n) if n < 1 => {
                        self.report(
                            e.value.span,
                            &p,
                            format!(
                                "max_attempts is {n}, but it counts all attempts, the first \
                                 included; use 1 or more"
                            ),
                        );
                        None
                    }
                    Value::Int(_) => {
                        self.report(
                            e.value.span,
                            &p,
                            "max_attempts is too large; use at most 4294967295",
                        );
                        None
                    }
                    _ => {
                        self.type_error(e.value, &p, "an integer", "write e.g. `max_attempts: 3`");
                        None
                    }
                }
            }
            None => {
                self.missing(
                    key.span,
                    path,
                    "max_attempts",
                    "say how many attempts in all, the first included, e.g. `max_attempts: 3`",
                );
                None
            }
        };
        let backoff = match find(&entries, "backoff") {
            Some(e) => self.duration(e.value, &join(path, "backoff")),
            None => Some(Duration::from_secs(1)),
        };
        let multiplier = match find(&entries, "multiplier") {
            None => Some(2.0),
            Some(e) => {
                let p = join(path, "multiplier");
                let m = match e.value.value {
                    Value::Int(i) => Some(i as f64),
                    Value::Float(f) => Some(f),
                    _ => {
                        self.type_error(e.value, &p, "a number", "write e.g. `multiplier: 2`");
                        None
                    }
                };
                match m {
                    Some(m) if m.is_finite() && m >= 1.0 => Some(m),
                    Some(m) => {
                        self.report(
                            e.value.span,
                            &p,
                            format!(
                                "multiplier is {}, but each wait must be at least as long as \
                                 the one before; use a number of 1 or more",
                                float_literal(m)
                            ),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        let max_backoff = match find(&entries, "max_backoff") {
            None => Some(None),
            Some(e) => {
                let p = join(path, "max_backoff");
                let d = self.duration(e.value, &p);
                if let (Some(max), Some(b)) = (d, backoff)
                    && max < b
                {
                    self.report(
                        e.value.span,
                        &p,
                        "max_backoff is shorter than backoff; make it at least as long as \
                         `backoff` or remove it",
                    );
                    None
                } else {
                    d.map(Some)
                }
            }
        };
        Some(RetryPolicy {
            max_attempts: max_attempts?,
            backoff: backoff?,
            multiplier: multiplier?,
            max_backoff: max_backoff?,
        })
    }

    fn catch(&mut self, node: &Node, path: &str) -> Option<(String, Span)> {
        match &node.value {
            Value::Str(s) => Some((s.clone(), node.span)),
            Value::Map(_) => {
                let entries = self.mapping(node, path, Some(CATCH_KEYS), "`catch`", "")?;
                match find(&entries, "target") {
                    Some(e) => self
                        .string(e.value, &join(path, "target"), "name the state to go to")
                        .map(|s| (s.to_string(), e.value.span)),
                    None => {
                        self.missing(
                            node.span,
                            path,
                            "target",
                            "name the state to go to when the action fails, e.g. `target: failed`",
                        );
                        None
                    }
                }
            }
            _ => {
                self.type_error(
                    node,
                    path,
                    "a state name or `{target: STATE}`",
                    "write e.g. `catch: failed`",
                );
                None
            }
        }
    }

    /// `timeout: {after, event}`, and the event with its span even when
    /// `after` is wrong.
    fn timer(
        &mut self,
        key: &Node,
        node: &Node,
        path: &str,
    ) -> (Option<TimerDef>, Option<(String, Span)>) {
        let hint = "write e.g. `timeout: {after: 7d, event: expired}`";
        let Some(entries) = self.mapping(node, path, Some(TIMEOUT_KEYS), "`timeout`", hint) else {
            return (None, None);
        };
        let after = match find(&entries, "after") {
            Some(e) => {
                let p = join(path, "after");
                match self.duration(e.value, &p) {
                    Some(Duration::ZERO) => {
                        self.report(
                            e.value.span,
                            &p,
                            "a timeout after zero would fire at once; use a positive duration \
                             such as `10m`",
                        );
                        None
                    }
                    d => d,
                }
            }
            None => {
                self.missing(
                    key.span,
                    path,
                    "after",
                    "say how long to wait, e.g. `after: 7d`",
                );
                None
            }
        };
        let event = self.event_field(
            key,
            &entries,
            path,
            "the event to send when time is up, e.g. `event: expired`",
        );
        let timer = match (after, &event) {
            (Some(after), Some((event, _))) => Some(TimerDef {
                after,
                event: event.clone(),
            }),
            _ => None,
        };
        (timer, event)
    }

    fn event_field(
        &mut self,
        key: &Node,
        entries: &[Entry<'_>],
        path: &str,
        what_to_do: &str,
    ) -> Option<(String, Span)> {
        match find(entries, "event") {
            Some(e) => self
                .name(e.value, &join(path, "event"), NameKind::Event)
                .map(|n| (n, e.value.span)),
            None => {
                self.missing(key.span, path, "event", &format!("name {what_to_do}"));
                None
            }
        }
    }

    /// `schedule: {cron, event}`, and the event with its span even when the
    /// cron line is wrong.
    fn schedule(
        &mut self,
        key: &Node,
        node: &Node,
        path: &str,
    ) -> (Option<ScheduleDef>, Option<(String, Span)>) {
        let hint = "write e.g. `schedule: {cron: \"0 3 * * 1\", event: retrain_due}`";
        let Some(entries) = self.mapping(node, path, Some(SCHEDULE_KEYS), "`schedule`", hint)
        else {
            return (None, None);
        };
        let cron = match find(&entries, "cron") {
            Some(e) => {
                let p = join(path, "cron");
                let hint = "write five fields: minute hour day-of-month month day-of-week, e.g. \
                            \"0 3 * * 1\"";
                match self
                    .string(e.value, &p, hint)
                    .map(|text| (text, Cron::parse(text)))
                {
                    None => None,
                    Some((_, Ok(c))) => Some(c),
                    Some((text, Err(err))) => {
                        let at = self.inner_span(e.value, text, err.offset);
                        self.report(
                            at,
                            &p,
                            format!("invalid cron line: {}; {hint}", err.message),
                        );
                        None
                    }
                }
            }
            None => {
                self.missing(
                    key.span,
                    path,
                    "cron",
                    "give the cron line, e.g. `cron: \"0 3 * * 1\"`",
                );
                None
            }
        };
        let event = self.event_field(
            key,
            &entries,
            path,
            "the event to send each time, e.g. `event: retrain_due`",
        );
        let schedule = match (cron, &event) {
            (Some(cron), Some((event, _))) => Some(ScheduleDef {
                cron,
                event: event.clone(),
            }),
            _ => None,
        };
        (schedule, event)
    }

    fn parallel(&mut self, key: &Node, node: &Node, path: &str) -> Option<Vec<BranchDef>> {
        let hint =
            "write the branches as a mapping: `parallel: {BRANCH: {initial: STATE, states: {…}}}`";
        let entries = self.mapping(node, path, None, "`parallel`", hint)?;
        if entries.is_empty() {
            self.report(
                key.span,
                path,
                "a parallel state needs at least one branch: `parallel: {BRANCH: {initial: STATE, states: {…}}}`",
            );
            return None;
        }
        let mut branches = Some(Vec::new());
        for e in &entries {
            let p = join(path, e.name);
            let branch = self.branch(e, &p);
            match (&mut branches, branch) {
                (Some(list), Some(b)) => list.push(b),
                _ => branches = None,
            }
        }
        branches
    }

    fn branch(&mut self, e: &Entry<'_>, path: &str) -> Option<BranchDef> {
        self.name_str(e.name, e.key.span, path, NameKind::Branch);
        let owner = format!("branch `{}`", e.name);
        let hint = "write `{initial: STATE, states: {…}}`";
        let entries = self.mapping(e.value, path, Some(BRANCH_KEYS), &owner, hint)?;
        let initial = match find(&entries, "initial") {
            Some(i) => self
                .string(
                    i.value,
                    &join(path, "initial"),
                    "name the state the branch starts in",
                )
                .map(|s| (s.to_string(), i.value.span)),
            None => {
                self.missing(
                    e.key.span,
                    path,
                    "initial",
                    "name the state this branch starts in",
                );
                None
            }
        };
        let states = match find(&entries, "states") {
            Some(s) => self.machine(
                s.key,
                s.value,
                &join(path, "states"),
                initial.as_ref(),
                &join(path, "initial"),
                true,
            ),
            None => {
                self.missing(
                    e.key.span,
                    path,
                    "states",
                    "define the branch's states under `states:`",
                );
                None
            }
        };
        Some(BranchDef {
            name: e.name.to_string(),
            initial: initial?.0,
            states: states?,
        })
    }

    fn map(&mut self, key: &Node, node: &Node, path: &str) -> Option<MapDef> {
        let hint = "write e.g. `map: {items: event.datasets, lifecycle: train-one}`";
        let entries = self.mapping(node, path, Some(MAP_KEYS), "`map`", hint)?;
        let items = match find(&entries, "items") {
            Some(e) => self.expression(e.value, &join(path, "items"), GUARD_ROOTS, false),
            None => {
                self.missing(
                    key.span,
                    path,
                    "items",
                    "give an expression for the list to map over, e.g. `items: event.datasets`",
                );
                None
            }
        };
        let lifecycle = match find(&entries, "lifecycle") {
            Some(e) => self.name(e.value, &join(path, "lifecycle"), NameKind::Lifecycle),
            None => {
                self.missing(
                    key.span,
                    path,
                    "lifecycle",
                    "name the lifecycle each item runs, e.g. `lifecycle: train-one`",
                );
                None
            }
        };
        let map_key = match find(&entries, "key") {
            None => Some(None),
            Some(e) => self
                .expression(e.value, &join(path, "key"), MAP_KEY_ROOTS, false)
                .map(Some),
        };
        Some(MapDef {
            items: items?,
            lifecycle: lifecycle?,
            key: map_key?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACTIONS: &[&str] = &["command", "http", "emit", "notify"];

    /// The contract example, as shipped in `examples/lifecycles`.
    const CONTRACT: &str = include_str!("../../../examples/lifecycles/churn-model.yaml");

    /// Removes the common indentation of the lines and the first newline,
    /// so test documents can be indented with the code.
    fn dedent(s: &str) -> String {
        let s = s.strip_prefix('\n').unwrap_or(s);
        let indent = s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        s.lines()
            .map(|l| l.get(indent..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    fn ok(src: &str) -> Definition {
        match parse_definition(&dedent(src), ACTIONS) {
            Ok(d) => d,
            Err(e) => panic!("expected a valid definition, got:\n{e}"),
        }
    }

    fn problems(src: &str) -> Vec<String> {
        match parse_definition(&dedent(src), ACTIONS) {
            Ok(d) => panic!("expected problems, got {d:#?}"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// Every problem, in order, as full `LINE:COL: PATH: MESSAGE` text.
    fn expect_exact(src: &str, expected: &[&str]) {
        let got = problems(src).join("\n");
        assert_eq!(got, expected.join("\n"), "\n--- got ---\n{got}\n");
    }

    /// Every problem, in order; each expected line is a prefix of the
    /// problem's text (position, path and the start of the message).
    fn expect(src: &str, expected: &[&str]) {
        let got = problems(src);
        let matches =
            got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| g.starts_with(e));
        assert!(
            matches,
            "\n--- expected (prefixes) ---\n{}\n--- got ---\n{}\n",
            expected.join("\n"),
            got.join("\n")
        );
    }

    fn state<'d>(d: &'d Definition, name: &str) -> &'d StateDef {
        d.states.iter().find(|s| s.name == name).unwrap()
    }

    // ----- the contract -----------------------------------------------------

    #[test]
    fn contract_example_parses() {
        let d = parse_definition(CONTRACT, &["command", "http", "emit"]).unwrap();
        assert_eq!(d.name, "churn-model");
        assert_eq!(d.mode, Mode::Durable);
        assert_eq!(d.description, None);
        assert_eq!(d.initial, "waiting_for_data");
        let names: Vec<&str> = d.states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "waiting_for_data",
                "training",
                "testing",
                "staging",
                "production",
                "rejected",
                "failed"
            ]
        );

        let w = state(&d, "waiting_for_data");
        assert_eq!(w.on.len(), 1);
        assert_eq!(
            (w.on[0].event.as_str(), w.on[0].target.as_str()),
            ("data_arrived", "training")
        );
        assert!(!w.terminal);

        let t = state(&d, "training");
        let action = t.action.as_ref().unwrap();
        assert_eq!(action.kind, "command");
        assert_eq!(action.config, serde_json::json!({"run": "python train.py"}));
        assert_eq!(action.timeout, None);
        assert_eq!(
            t.retry,
            Some(RetryPolicy {
                max_attempts: 3,
                backoff: Duration::from_secs(10),
                multiplier: 2.0,
                max_backoff: None,
            })
        );
        let events: Vec<(&str, &str)> =
            t.on.iter()
                .map(|t| (t.event.as_str(), t.target.as_str()))
                .collect();
        assert_eq!(
            events,
            [("action_succeeded", "testing"), ("action_failed", "failed")]
        );

        let testing = state(&d, "testing");
        assert_eq!(testing.on[0].event, "suite_passed");
        assert_eq!(testing.on[0].target, "staging");
        let guard = testing.on[0].guard.as_ref().unwrap();
        assert_eq!(guard.source, "event.auc > 0.8");
        assert_eq!(
            guard.expr,
            expr::parse("event.auc > 0.8", GUARD_ROOTS).unwrap()
        );
        assert_eq!(testing.on[1].guard, None);
        assert_eq!(testing.on[1].target, "rejected");

        let staging = state(&d, "staging");
        assert_eq!(
            staging.timeout,
            Some(TimerDef {
                after: Duration::from_secs(7 * 86_400),
                event: "canary_expired".into()
            })
        );
        assert_eq!(staging.on.len(), 3);

        let production = state(&d, "production");
        let schedule = production.schedule.as_ref().unwrap();
        assert_eq!(schedule.cron.source(), "0 3 * * 1");
        assert_eq!(schedule.event, "retrain_due");

        assert!(state(&d, "rejected").terminal);
        assert!(state(&d, "failed").terminal);
        assert!(state(&d, "failed").on.is_empty());
    }

    #[test]
    fn many_mistakes_are_all_reported_in_order() {
        expect_exact(
            r#"
            lifecycle: churn-model
            mode: durible
            initial: waiting_for_data
            owner: me
            states:
              waiting_for_data:
                on: {data_arrived: trainig}
              training:
                action: {comand: "python train.py"}
                retry: {max_attempts: 0, backoff: 10x}
                on: {action_succeeded: testing, action_failed: failed}
              testing:
                on:
                  suite_passed: {target: staging, guard: "event.auc >"}
                  suite_failed: rejected
              staging:
                timeout: {after: 7d, event: canary_expird}
                on: {canary_won: production, canary_lost: rejected, canary_expired: rejected}
              production:
                schedule: {cron: "0 3 * *", event: retrain_due}
                on: {drift_detected: training, retrain_due: training}
              rejected: {terminal: true, on: {x: failed}}
              failed: {terminal: true}
              orphan:
                description: 3
            "#,
            &[
                "2:7: mode: unknown mode `durible`; use `durable` (the default) or `ephemeral`; did you mean `durable`?",
                "4:1: owner: unknown key `owner` in a lifecycle definition; allowed keys are: lifecycle, mode, description, initial, states",
                "7:24: states.waiting_for_data.on.data_arrived: unknown state `trainig` in transition target; states are: waiting_for_data, training, testing, staging, production, rejected, failed, orphan; did you mean `training`?",
                "9:14: states.training.action.comand: unknown action kind `comand`; known kinds are: command, http, emit, notify (besides them, an action takes only `timeout`); did you mean `command`?",
                "10:27: states.training.retry.max_attempts: max_attempts is 0, but it counts all attempts, the first included; use 1 or more",
                "10:39: states.training.retry.backoff: invalid duration `10x`: unknown unit `x`; expected a number followed by a unit (ms, s, m, h, d, w), largest unit first, e.g. 500ms, 10s, 5m, 1h30m, 7d, 2w",
                "14:58: states.testing.on.suite_passed.guard: invalid expression: expected a value after `>`, but the expression ended; expressions may use event, context",
                "17:33: states.staging.timeout.event: event `canary_expird` has no transition in `on` of state `staging`, so it would do nothing; add `on: {canary_expird: STATE}`; did you mean `canary_expired`?",
                "20:30: states.production.schedule.cron: invalid cron line: expected 5 fields (minute hour day-of-month month day-of-week), found 4; write five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * 1\"",
                "22:30: states.rejected.on: terminal state `rejected` cannot have `on`: nothing happens in a terminal state; remove `on` or `terminal: true`",
                "24:3: states.orphan: state `orphan` is a dead end: add `on:` transitions or `terminal: true`",
                "25:18: states.orphan.description: expected a string, found an integer; quote the text",
            ],
        );
    }

    #[test]
    fn yaml_syntax_error_is_one_problem_at_the_parser_position() {
        let src = "lifecycle: x\nstates:\n  a: {on: [b\n  c: d\n";
        let yaml_err = yaml::parse(src).unwrap_err();
        let err = parse_definition(src, ACTIONS).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        let p = &err.problems[0];
        assert_eq!((p.line, p.column), (yaml_err.line, yaml_err.column));
        assert_eq!(p.path, "");
        assert!(p.message.starts_with("invalid YAML: "), "{p}");
        assert_eq!(
            err.to_string(),
            format!("{}:{}: {}", p.line, p.column, p.message)
        );

        let err = parse_definition("a: 1\na: 2\n", ACTIONS).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!((err.problems[0].line, err.problems[0].column), (2, 1));
        assert!(err.problems[0].message.contains("duplicate key `a`"));

        let err = parse_definition("lifecycle: a\n---\nlifecycle: b\n", ACTIONS).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].message.contains("exactly one document"));
    }

    #[test]
    fn problems_serialize_and_display() {
        let err = parse_definition("lifecycle: x\n", ACTIONS).unwrap_err();
        let json = serde_json::to_value(&err.problems[0]).unwrap();
        assert_eq!(json["line"], 1);
        assert_eq!(json["column"], 1);
        assert_eq!(json["path"], "initial");
        assert_eq!(
            err.to_string().lines().count(),
            err.problems.len(),
            "one line per problem"
        );
    }

    // ----- helpers ----------------------------------------------------------------

    #[test]
    fn lists() {
        let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(
            list(&names).ends_with("s29, … (10 more)"),
            "{}",
            list(&names)
        );
        assert_eq!(list(&["a", "b"]), "a, b");
    }

    #[test]
    fn multi_line_guards_are_reported_at_their_start() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                on:
                  go:
                    target: b
                    guard: >-
                      event.x >
                      event.
              b: {terminal: true}
            "#,
            &[
                "9:11: states.a.on.go.guard: invalid expression: expected a field name after `.` (use [0] for array indexes, ['my-field'] for other names); expressions may use event, context",
            ],
        );
    }

    // ----- top level ----------------------------------------------------------

    #[test]
    fn top_level_keys() {
        let d = ok(r#"
            lifecycle: request.v2
            mode: ephemeral
            description: per-request flow
            initial: a
            states:
              a: {terminal: true}
            "#);
        assert_eq!(d.name, "request.v2");
        assert_eq!(d.mode, Mode::Ephemeral);
        assert_eq!(d.description.as_deref(), Some("per-request flow"));
        let d = ok("lifecycle: x\ninitial: a\nstates: {a: {terminal: true}}");
        assert_eq!(d.mode, Mode::Durable, "durable is the default");
    }

    #[test]
    fn missing_top_level_keys() {
        expect(
            "mode: durable\n",
            &[
                "1:1: lifecycle: missing `lifecycle`: name this lifecycle",
                "1:1: initial: missing `initial`: name the state new instances start in, e.g. `initial: waiting_for_data`",
                "1:1: states: missing `states`: define the states",
            ],
        );
        expect(
            "lifecycle: x\nstates: {first: {terminal: true}}\n",
            &[
                "1:1: initial: missing `initial`: name the state new instances start in, e.g. `initial: first`",
            ],
        );
    }

    #[test]
    fn unknown_top_level_key_lists_the_allowed_ones() {
        expect(
            "lifecycle: x\ninital: a\ninitial: a\nstates: {a: {terminal: true}}\n",
            &[
                "2:1: inital: unknown key `inital` in a lifecycle definition; allowed keys are: lifecycle, mode, description, initial, states; did you mean `initial`?",
            ],
        );
    }

    #[test]
    fn lifecycle_name_rules() {
        for bad in ["-x", "_x", "a b", "x/y", "é"] {
            let src =
                format!("lifecycle: \"{bad}\"\ninitial: a\nstates: {{a: {{terminal: true}}}}\n");
            let err = parse_definition(&src, ACTIONS).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{bad}: {err}");
            assert!(
                err.problems[0]
                    .message
                    .starts_with("invalid lifecycle name"),
                "{err}"
            );
        }
        let long = "a".repeat(129);
        let src = format!("lifecycle: {long}\ninitial: a\nstates: {{a: {{terminal: true}}}}\n");
        assert!(parse_definition(&src, ACTIONS).is_err());
        let src = format!(
            "lifecycle: 9{}\ninitial: a\nstates: {{a: {{terminal: true}}}}\n",
            "a".repeat(127)
        );
        assert!(parse_definition(&src, ACTIONS).is_ok());
        expect(
            "lifecycle: 12\ninitial: a\nstates: {a: {terminal: true}}\n",
            &["1:12: lifecycle: expected a string, found an integer; write a lifecycle name"],
        );
    }

    #[test]
    fn empty_or_wrong_documents() {
        expect("", &["1:1: the definition is empty"]);
        expect("# nothing\n", &["1:1: the definition is empty"]);
        expect("- a\n- b\n", &["1:1: expected a mapping, found a sequence"]);
        expect("just text\n", &["1:1: expected a mapping, found a string"]);
    }

    #[test]
    fn states_must_be_a_non_empty_mapping() {
        expect(
            "lifecycle: x\ninitial: a\nstates: {}\n",
            &["3:1: states: no states are defined; add at least one state"],
        );
        expect(
            "lifecycle: x\ninitial: a\nstates: [a, b]\n",
            &["3:9: states: expected a mapping, found a sequence; list the states as a mapping"],
        );
        expect(
            "lifecycle: x\ninitial: a\nstates:\n  a: done\n",
            &["4:6: states.a: expected a mapping, found a string; a state is a mapping"],
        );
    }

    #[test]
    fn initial_must_name_a_state() {
        expect(
            r#"
            lifecycle: x
            initial: strat
            states:
              start: {on: {go: end}}
              end: {terminal: true}
            "#,
            &[
                "2:10: initial: unknown initial state `strat`; states are: start, end; did you mean `start`?",
            ],
        );
    }

    // ----- names ----------------------------------------------------------------

    #[test]
    fn state_and_event_names() {
        expect(
            r#"
            lifecycle: x
            initial: "1st"
            states:
              "1st": {on: {"go now": end, _ok.v-2: end}}
              end: {terminal: true}
            "#,
            &[
                "4:3: states.1st: invalid state name `1st`: it must start with a letter or `_`",
                "4:16: states.1st.on.go now: invalid event name `go now`: it must start with a letter or `_`",
            ],
        );
        let long = format!("e{}", "x".repeat(128));
        let src = format!(
            "lifecycle: x\ninitial: a\nstates:\n  a: {{on: {{{long}: b}}}}\n  b: {{terminal: true}}\n"
        );
        let err = parse_definition(&src, ACTIONS).unwrap_err();
        assert!(
            err.problems[0].message.starts_with("invalid event name"),
            "{err}"
        );
    }

    #[test]
    fn non_string_keys() {
        expect(
            "lifecycle: x\ninitial: a\nstates:\n  a: {on: {1: b}}\n  b: {terminal: true}\n",
            &["4:12: states.a.on: keys of `on` must be strings, found an integer; quote the key"],
        );
    }

    // ----- states -----------------------------------------------------------------

    #[test]
    fn unknown_state_key() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                on: {go: b}
                retyr: 3
              b: {terminal: true}
            "#,
            &[
                "6:5: states.a.retyr: unknown key `retyr` in state `a`; allowed keys are: description, terminal, on, action, retry, catch, timeout, schedule, parallel, map; did you mean `retry`?",
            ],
        );
    }

    #[test]
    fn state_description_and_terminal_types() {
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a: {description: "first", on: {go: b}}
              b: {terminal: true, description: done}
            "#);
        assert_eq!(state(&d, "a").description.as_deref(), Some("first"));
        assert!(state(&d, "b").terminal);
        expect(
            "lifecycle: x\ninitial: a\nstates:\n  a: {terminal: yes}\n",
            &[
                "4:17: states.a.terminal: expected `true` or `false`, found a string; write `terminal: true`",
            ],
        );
    }

    #[test]
    fn terminal_states_do_nothing() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                terminal: true
                on: {go: a}
                action: {command: run}
                timeout: {after: 1m, event: go}
                schedule: {cron: "* * * * *", event: go}
            "#,
            &[
                "6:5: states.a.on: terminal state `a` cannot have `on`",
                "7:5: states.a.action: terminal state `a` cannot have `action`",
                "8:5: states.a.timeout: terminal state `a` cannot have `timeout`",
                "9:5: states.a.schedule: terminal state `a` cannot have `schedule`",
            ],
        );
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a: {on: {go: b}}
              b:
                terminal: true
                parallel: {p: {initial: c, states: {c: {terminal: true}}}}
                map: {items: event.xs, lifecycle: child}
            "#,
            &[
                "7:5: states.b.parallel: terminal state `b` cannot have `parallel`",
                "8:5: states.b.map: terminal state `b` cannot have `map`",
                "8:5: states.b.map: `parallel` and `map` cannot be combined in one state",
            ],
        );
    }

    #[test]
    fn dead_ends() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a: {on: {go: b, stop: c}}
              b:
                description: waits forever
              c:
              d: {on: {}}
            "#,
            &[
                "5:3: states.b: state `b` is a dead end: add `on:` transitions or `terminal: true`",
                "7:3: states.c: state `c` is a dead end: add `on:` transitions or `terminal: true`",
                "8:3: states.d: state `d` is a dead end: add `on:` transitions or `terminal: true`",
                "8:3: states.d: state `d` is unreachable: no transition or catch leads to it from the initial state `a`",
            ],
        );
    }

    #[test]
    fn unreachable_states() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a: {on: {go: b}}
              b: {terminal: true}
              island: {on: {back: a}}
              lost: {terminal: true}
            "#,
            &[
                "6:3: states.island: state `island` is unreachable: no transition or catch leads to it from the initial state `a`; add a transition to it or remove it",
                "7:3: states.lost: state `lost` is unreachable",
            ],
        );
        // Reached only through catch: fine.
        ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                catch: broken
                on: {action_succeeded: done}
              done: {terminal: true}
              broken: {terminal: true}
            "#);
    }

    // ----- transitions --------------------------------------------------------------

    #[test]
    fn transition_forms() {
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                on:
                  plain: b
                  object: {target: c, guard: "context.n > 1", assign: {n: "context.n", seen: true, count: 3, ratio: 0.5, nothing: null}}
                  choice:
                    - {target: b, guard: event.ok}
                    - target: c
                      guard: "event.retry"
                    - c
              b: {terminal: true}
              c: {terminal: true}
            "#);
        let on = &state(&d, "a").on;
        let summary: Vec<(&str, &str, Option<&str>)> = on
            .iter()
            .map(|t| {
                (
                    t.event.as_str(),
                    t.target.as_str(),
                    t.guard.as_ref().map(|g| g.source.as_str()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("plain", "b", None),
                ("object", "c", Some("context.n > 1")),
                ("choice", "b", Some("event.ok")),
                ("choice", "c", Some("event.retry")),
                ("choice", "c", None),
            ]
        );
        let assign: Vec<(&str, &str)> = on[1]
            .assign
            .iter()
            .map(|(k, g)| (k.as_str(), g.source.as_str()))
            .collect();
        assert_eq!(
            assign,
            [
                ("n", "context.n"),
                ("seen", "true"),
                ("count", "3"),
                ("ratio", "0.5"),
                ("nothing", "null")
            ]
        );
    }

    #[test]
    fn transition_mistakes() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                on:
                  none:
                  number: 5
                  empty: []
                  no_target: {guard: event.ok}
                  extra: {target: b, when: event.ok}
                  order:
                    - b
                    - {target: b, guard: event.ok}
              b: {terminal: true}
            "#,
            &[
                "6:11: states.a.on.none: no target state is given for `none`; write `none: STATE`",
                "7:15: states.a.on.number: expected a target state, a mapping `{target: STATE, guard: EXPR}` or a list of such mappings, found an integer",
                "8:14: states.a.on.empty: no alternatives are listed for `empty`",
                "9:18: states.a.on.no_target.target: missing `target`: name the state this transition goes to",
                "10:26: states.a.on.extra.when: unknown key `when` in a transition; allowed keys are: target, guard, assign",
                "13:11: states.a.on.order[1]: this alternative is never tried: alternative 1 before it has no guard",
            ],
        );
    }

    #[test]
    fn targets_must_exist_in_the_same_machine() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                on: {go: stagin, other: {target: nowhere}, list: [{target: b, guard: event.x}, {target: zzz}]}
              b: {terminal: true}
              staging: {terminal: true}
            "#,
            &[
                "5:14: states.a.on.go: unknown state `stagin` in transition target; states are: a, b, staging; did you mean `staging`?",
                "5:38: states.a.on.other.target: unknown state `nowhere` in transition target; states are: a, b, staging",
                "5:93: states.a.on.list[1].target: unknown state `zzz` in transition target",
            ],
        );
    }

    #[test]
    fn guards_and_assign_expressions() {
        // Plain, quoted and escaped guards: positions point into the text
        // when it can be mapped exactly, else at the start of the value.
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                on:
                  e1: {target: b, guard: event.x >}
                  e2: {target: b, guard: 'event.x >'}
                  e3: {target: b, guard: "event.x \u003e"}
                  e4: {target: b, guard: "model.auc > 1"}
                  e5: {target: b, guard: [1]}
                  e6: {target: b, assign: {"bad field": 1, n: "event.", m: [1]}}
              b: {terminal: true}
            "#,
            &[
                "6:39: states.a.on.e1.guard: invalid expression: expected a value after `>`, but the expression ended; expressions may use event, context",
                "7:40: states.a.on.e2.guard: invalid expression: expected a value after `>`, but the expression ended; expressions may use event, context",
                "8:30: states.a.on.e3.guard: invalid expression: expected a value after `>`, but the expression ended; expressions may use event, context",
                "9:31: states.a.on.e4.guard: invalid expression: unknown name `model`",
                "10:30: states.a.on.e5.guard: expected an expression, found a sequence; write an expression string over event, context",
                "11:32: states.a.on.e6.assign.bad field: invalid context field name `bad field`",
                "11:58: states.a.on.e6.assign.n: invalid expression: expected a field name after `.` (use [0] for array indexes, ['my-field'] for other names); expressions may use event, context",
                "11:64: states.a.on.e6.assign.m: expected an expression, found a sequence",
            ],
        );
    }

    #[test]
    fn builtin_events_need_their_source() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a: {on: {go: b, action_succeeded: b, parallel_done: b, map_done: b}}
              b: {terminal: true}
            "#,
            &[
                "4:19: states.a.on.action_succeeded: `action_succeeded` is only sent to states that runs an `action`",
                "4:40: states.a.on.parallel_done: `parallel_done` is only sent to states that are `parallel`",
                "4:58: states.a.on.map_done: `map_done` is only sent to states that are a `map`",
            ],
        );
    }

    // ----- actions ------------------------------------------------------------------

    /// A one-state machine around `action_yaml` (the value of `action:`).
    fn with_action(action_yaml: &str) -> String {
        format!(
            "lifecycle: x\ninitial: a\nstates:\n  a:\n    action: {action_yaml}\n    on: {{action_succeeded: b, action_failed: b}}\n  b: {{terminal: true}}\n"
        )
    }

    fn action_of(action_yaml: &str) -> ActionDef {
        let d = parse_definition(&with_action(action_yaml), ACTIONS)
            .unwrap_or_else(|e| panic!("{action_yaml}:\n{e}"));
        d.states[0].action.clone().unwrap()
    }

    fn action_problems(action_yaml: &str) -> Vec<String> {
        match parse_definition(&with_action(action_yaml), ACTIONS) {
            Ok(_) => panic!("{action_yaml} should fail"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn action_kinds_and_configs() {
        let a = action_of(r#"{command: "python train.py", timeout: 2h}"#);
        assert_eq!(a.kind, "command");
        assert_eq!(a.config, serde_json::json!({"run": "python train.py"}));
        assert_eq!(a.timeout, Some(Duration::from_secs(7200)));

        let a = action_of(r#"{command: {run: make, env: {MODE: fast, N: 3}, cwd: /srv}}"#);
        assert_eq!(
            a.config,
            serde_json::json!({"run": "make", "env": {"MODE": "fast", "N": 3}, "cwd": "/srv"})
        );

        let a = action_of(r#"{http: "https://example.com/hook"}"#);
        assert_eq!(
            (a.kind.as_str(), a.config.clone()),
            (
                "http",
                serde_json::json!({"url": "https://example.com/hook"})
            )
        );
        let a = action_of(
            r#"{http: {url: "https://x", method: POST, headers: {A: b}, body: {k: [1, 2]}}}"#,
        );
        assert_eq!(
            a.config,
            serde_json::json!({"url": "https://x", "method": "POST", "headers": {"A": "b"}, "body": {"k": [1, 2]}})
        );

        let a = action_of("{emit: {event: model_ready, lifecycle: deploy, key: k1, data: {v: 1}}}");
        assert_eq!(a.kind, "emit");
        assert_eq!(
            a.config,
            serde_json::json!({"event": "model_ready", "lifecycle": "deploy", "key": "k1", "data": {"v": 1}})
        );

        // A kind a domain registered keeps whatever was written.
        let a = action_of("{notify: [ops, ml]}");
        assert_eq!(
            (a.kind.as_str(), a.config.clone()),
            ("notify", serde_json::json!(["ops", "ml"]))
        );
    }

    #[test]
    fn action_mistakes() {
        assert_eq!(
            action_problems("{comand: run}"),
            [
                "5:14: states.a.action.comand: unknown action kind `comand`; known kinds are: command, http, emit, notify (besides them, an action takes only `timeout`); did you mean `command`?"
            ]
        );
        let p = action_problems("{command: a, http: b}");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("5:26: states.a.action.http: an action has exactly one kind, but both `command` and `http` are given"), "{p:?}");
        assert_eq!(
            action_problems("{timeout: 5m}"),
            [
                "5:5: states.a.action: the action names no kind; add one of: command, http, emit, notify"
            ]
        );
        let p = action_problems("\"python train.py\"");
        assert!(p[0].starts_with("5:13: states.a.action: expected a mapping, found a string; write the action as a mapping, e.g. `action: {command: …}`"), "{p:?}");
        let p = action_problems("{command: \"\"}");
        assert!(
            p[0].starts_with("5:23: states.a.action.command: this is empty"),
            "{p:?}"
        );
        let p = action_problems("{command: {env: {A: [1]}, shell: sh}}");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].starts_with("5:23: states.a.action.command.run: missing `run`"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with(
                "5:33: states.a.action.command.env.A: expected a string, found a sequence"
            ),
            "{p:?}"
        );
        assert!(p[2].starts_with("5:39: states.a.action.command.shell: unknown key `shell` in `command`; allowed keys are: run, env, cwd"), "{p:?}");
        let p = action_problems("{http: {method: GET}}");
        assert!(
            p[0].starts_with("5:20: states.a.action.http.url: missing `url`"),
            "{p:?}"
        );
        let p = action_problems("{emit: {data: 1}}");
        assert!(
            p[0].starts_with(
                "5:20: states.a.action.emit.event: missing `event`: name the event to send"
            ),
            "{p:?}"
        );
        let p = action_problems("{emit: {event: \"not valid\", lifecycle: \"-x\"}}");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("5:28: states.a.action.emit.event: invalid event name `not valid`"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("5:52: states.a.action.emit.lifecycle: invalid lifecycle name `-x`"),
            "{p:?}"
        );
        let p = action_problems("{emit: model_ready}");
        assert!(
            p[0].starts_with("5:20: states.a.action.emit: expected a mapping, found a string"),
            "{p:?}"
        );
        let p = action_problems("{command: run, timeout: 0s}");
        assert!(
            p[0].starts_with(
                "5:37: states.a.action.timeout: an action timeout of zero fails every attempt"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn action_states_must_handle_success_and_failure() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                on: {done: b}
              b: {terminal: true}
            "#,
            &[
                "5:5: states.a.action: state `a` runs an action but has no `action_succeeded` transition; add `on: {action_succeeded: NEXT_STATE}`",
                "5:5: states.a.action: state `a` runs an action but does not handle its failure; add `on: {action_failed: STATE}` or `catch: STATE`",
            ],
        );
        // `catch` handles the failure; then `action_failed` would never come.
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                catch: {target: b}
                on: {action_succeeded: b}
              b: {terminal: true}
            "#);
        assert_eq!(d.states[0].catch.as_deref(), Some("b"));
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                catch: b
                on: {action_succeeded: b, action_failed: b}
              b: {terminal: true}
            "#,
            &[
                "7:31: states.a.on.action_failed: `action_failed` is never sent to state `a` because its `catch` handles a failed action",
            ],
        );
    }

    // ----- retry and catch ------------------------------------------------------------

    #[test]
    fn retry_policy() {
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                retry: {max_attempts: 5}
                on: {action_succeeded: b, action_failed: b}
              b: {terminal: true}
            "#);
        assert_eq!(
            d.states[0].retry,
            Some(RetryPolicy {
                max_attempts: 5,
                backoff: Duration::from_secs(1),
                multiplier: 2.0,
                max_backoff: None
            })
        );
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                retry: {max_attempts: 2, backoff: 500ms, multiplier: 1, max_backoff: 1m}
                on: {action_succeeded: b, action_failed: b}
              b: {terminal: true}
            "#);
        assert_eq!(
            d.states[0].retry,
            Some(RetryPolicy {
                max_attempts: 2,
                backoff: Duration::from_millis(500),
                multiplier: 1.0,
                max_backoff: Some(Duration::from_secs(60))
            })
        );
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                retry: {backoff: 10s, multiplier: 0.5, max_backoff: 1s, jitter: true}
                on: {action_succeeded: b, action_failed: b}
              b:
                retry:
                  max_attempts: many
                terminal: true
            "#,
            &[
                "6:5: states.a.retry.max_attempts: missing `max_attempts`: say how many attempts in all",
                "6:39: states.a.retry.multiplier: multiplier is 0.5, but each wait must be at least as long as the one before; use a number of 1 or more",
                "6:57: states.a.retry.max_backoff: max_backoff is shorter than backoff",
                "6:61: states.a.retry.jitter: unknown key `jitter` in `retry`; allowed keys are: max_attempts, backoff, multiplier, max_backoff",
                "9:5: states.b.retry: `retry` only applies to a state that runs an `action`, and state `b` has none; add an `action` or remove `retry`",
                "10:21: states.b.retry.max_attempts: expected an integer, found a string; write e.g. `max_attempts: 3`",
            ],
        );
    }

    #[test]
    fn catch_forms_and_rules() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run}
                catch: broke
                on: {action_succeeded: b}
              b: {on: {again: a}, catch: a}
              broken: {terminal: true}
              c:
                action: {command: run}
                catch: [b]
                on: {action_succeeded: b}
            "#,
            &[
                "6:12: states.a.catch: unknown state `broke` in catch target; states are: a, b, broken, c; did you mean `broken`?",
                "8:23: states.b.catch: `catch` only applies to a state that runs an `action`",
                "12:12: states.c.catch: expected a state name or `{target: STATE}`, found a sequence",
            ],
        );
    }

    // ----- timers and schedules ----------------------------------------------------------

    #[test]
    fn timeouts() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                timeout: {after: 0s, event: late}
                on: {late: b, next: c}
              b:
                timeout: {after: soon, event: late}
                on: {go: c}
              c:
                timeout: {event: 3}
                on: {go: a}
            "#,
            &[
                "5:22: states.a.timeout.after: a timeout after zero would fire at once; use a positive duration such as `10m`",
                "8:22: states.b.timeout.after: invalid duration `soon`",
                "8:35: states.b.timeout.event: event `late` has no transition in `on` of state `b`, so it would do nothing; add `on: {late: STATE}`",
                "11:5: states.c.timeout.after: missing `after`: say how long to wait, e.g. `after: 7d`",
                "11:22: states.c.timeout.event: expected a string, found an integer; write an event name such as `my_name`",
            ],
        );
    }

    #[test]
    fn schedules() {
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                schedule: {cron: "@daily", event: tick}
                on: {tick: a}
            "#);
        assert_eq!(
            d.states[0].schedule.as_ref().unwrap().cron.source(),
            "@daily"
        );
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                schedule: {cron: "0 3 * *", event: tick}
                on: {tick: b}
              b:
                schedule:
                  cron: 5
                  event: tock
                on: {tick: a}
            "#,
            &[
                "5:30: states.a.schedule.cron: invalid cron line: expected 5 fields (minute hour day-of-month month day-of-week), found 4; write five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * 1\"",
                "9:13: states.b.schedule.cron: expected a string, found an integer; write five fields",
                "10:14: states.b.schedule.event: event `tock` has no transition in `on` of state `b`, so it would do nothing; add `on: {tock: STATE}`",
            ],
        );
    }

    #[test]
    fn durations_report_the_duration_message_at_the_value() {
        expect(
            r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: run, timeout: 10}
                retry: {max_attempts: 2, backoff: [1s]}
                on: {action_succeeded: a, action_failed: a}
            "#,
            &[
                "5:37: states.a.action.timeout: duration `10` has no unit; add a unit, e.g. 10s, 5m, 2h, 7d",
                "6:39: states.a.retry.backoff: expected a duration, found a sequence; write a number with a unit",
            ],
        );
    }

    // ----- parallel and map --------------------------------------------------------------

    const PARALLEL: &str = r#"
        lifecycle: x
        initial: fan
        states:
          fan:
            parallel:
              build:
                initial: compile
                states:
                  compile: {action: {command: make}, on: {action_succeeded: done, action_failed: done}}
                  done: {terminal: true}
              docs:
                initial: write
                states:
                  write: {on: {written: done}}
                  done: {terminal: true}
            on: {parallel_done: end}
          end: {terminal: true}
        "#;

    #[test]
    fn parallel_states() {
        let d = ok(PARALLEL);
        let branches = d.states[0].parallel.as_ref().unwrap();
        assert_eq!(branches.len(), 2);
        assert_eq!(branches[0].name, "build");
        assert_eq!(branches[0].initial, "compile");
        assert_eq!(branches[0].states.len(), 2);
        assert_eq!(
            branches[0].states[0].action.as_ref().unwrap().kind,
            "command"
        );
        assert_eq!(branches[1].name, "docs");
        assert_eq!(branches[1].states[0].on[0].target, "done");
    }

    #[test]
    fn parallel_mistakes() {
        expect(
            r#"
            lifecycle: x
            initial: fan
            states:
              fan:
                parallel:
                  one:
                    initial: a
                    states:
                      a: {on: {go: end}}
                      b: {schedule: {cron: "* * * * *", event: go}, parallel: {}, map: {}}
                  two:
                    initial: z
                    states: {c: {terminal: true}}
                  three: {states: {d: {terminal: true}}}
                on: {done: end, other: both, more: empty}
              end: {terminal: true}
              both:
                action: {command: run}
                parallel: {p: {initial: q, states: {q: {terminal: true}}}}
                on: {action_succeeded: end, action_failed: end, parallel_done: end}
              empty:
                parallel: {}
                on: {parallel_done: end}
            "#,
            &[
                "5:5: states.fan.parallel: parallel state `fan` has no `parallel_done` transition; add `on: {parallel_done: NEXT_STATE}`",
                "8:9: states.fan.parallel.one.states: this branch has no terminal state, so it never finishes and `parallel_done` is never sent; add a state with `terminal: true`",
                "9:24: states.fan.parallel.one.states.a.on.go: unknown state `end` in transition target; states are: a, b",
                "10:15: states.fan.parallel.one.states.b.schedule: a state inside a parallel branch cannot have a `schedule`",
                "10:57: states.fan.parallel.one.states.b.parallel: a state inside a parallel branch cannot itself be `parallel`",
                "10:71: states.fan.parallel.one.states.b.map: a state inside a parallel branch cannot be a `map`",
                "10:71: states.fan.parallel.one.states.b.map: `parallel` and `map` cannot be combined in one state",
                "12:18: states.fan.parallel.two.initial: unknown initial state `z`; states are: c",
                "14:7: states.fan.parallel.three.initial: missing `initial`: name the state this branch starts in",
                "19:5: states.both.parallel: `action` and `parallel` cannot be combined in one state",
                "22:5: states.empty.parallel: a parallel state needs at least one branch",
            ],
        );
    }

    #[test]
    fn map_states() {
        let d = ok(r#"
            lifecycle: x
            initial: each
            states:
              each:
                map: {items: event.datasets, lifecycle: train-one, key: item.name}
                on: {map_done: end}
              end: {terminal: true}
            "#);
        let m = d.states[0].map.as_ref().unwrap();
        assert_eq!(m.items.source, "event.datasets");
        assert_eq!(m.lifecycle, "train-one");
        assert_eq!(m.key.as_ref().unwrap().source, "item.name");
        expect(
            r#"
            lifecycle: x
            initial: each
            states:
              each:
                map: {items: item.list, key: "index +", size: 3}
                on: {done: end}
              end: {terminal: true}
            "#,
            &[
                "5:5: states.each.map.lifecycle: missing `lifecycle`: name the lifecycle each item runs",
                "5:5: states.each.map: map state `each` has no `map_done` transition; add `on: {map_done: NEXT_STATE}`",
                "5:18: states.each.map.items: invalid expression: unknown name `item`",
                "5:42: states.each.map.key: invalid expression: expected a value after `+`, but the expression ended; expressions may use item, index, event, context",
                "5:45: states.each.map.size: unknown key `size` in `map`; allowed keys are: items, lifecycle, key",
            ],
        );
    }

    // ----- YAML features ---------------------------------------------------------------------

    #[test]
    fn wrong_yaml_types_are_reported_at_the_node() {
        expect(
            r#"
            lifecycle: x
            initial: a
            description: [no]
            states:
              a:
                on: [go, b]
                timeout: 5m
              b: {terminal: true}
            "#,
            &[
                "3:14: description: expected a string, found a sequence; quote the text",
                "6:9: states.a.on: expected a mapping, found a sequence; write `on: {EVENT: NEXT_STATE}`",
                "7:14: states.a.timeout: expected a mapping, found a string; write e.g. `timeout: {after: 7d, event: expired}`",
            ],
        );
    }

    #[test]
    fn anchors_and_aliases_work() {
        let d = ok(r#"
            lifecycle: x
            initial: a
            states:
              a:
                action: {command: one}
                retry: &retry {max_attempts: 3, backoff: 5s}
                on: &next {action_succeeded: b, action_failed: b}
              b:
                action: {command: two}
                retry: *retry
                on: {action_succeeded: c, action_failed: c}
              c: {terminal: true}
            "#);
        assert_eq!(d.states[0].retry, d.states[1].retry);
    }

    #[test]
    fn parse_definition_never_panics_on_odd_input() {
        for src in [
            "",
            "~",
            "[]",
            "{}",
            "lifecycle:",
            "states:",
            "states: {a: }",
            "states: {a: {on: {b: [[]]}}}",
            "initial: [a]\nstates: {a: {on: {x: {target: [1]}}}}",
            "lifecycle: é\ninitial: é\nstates: {é: {on: {é: {target: é, guard: \"é >\"}}}}",
            "states: {a: {parallel: {b: {states: {c: {parallel: {d: {}}}}}}}}",
            "\u{feff}lifecycle: x",
            "? [a, b]\n: c",
            "&a a: *a",
        ] {
            let _ = parse_definition(src, ACTIONS);
            let _ = parse_definition(src, &[]);
        }
    }

    /// Small edits of the contract example, to reach deep into the checks.
    fn mutation() -> impl Strategy<Value = String> {
        let edit = (0usize..CONTRACT.len(), 0usize..8, any::<char>(), 0usize..30);
        proptest::collection::vec(edit, 1..6).prop_map(|edits| {
            let mut s = CONTRACT.to_string();
            for (at, op, c, n) in edits {
                let mut at = at.min(s.len());
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                let picks = [
                    ':', ' ', '\n', '{', '}', '[', ']', '-', ',', '"', '#', '&', '*', 'x', '0',
                    '\t',
                ];
                match op {
                    0 => s.insert(at, c),
                    1 => s.insert(at, picks[n % picks.len()]),
                    2 | 3 => {
                        let end = (at + n % 8).min(s.len());
                        if s.is_char_boundary(end) {
                            s.replace_range(at..end, "");
                        }
                    }
                    4 => {
                        // Duplicate a line.
                        let lines: Vec<&str> = s.lines().collect();
                        let i = n % lines.len();
                        let mut out: Vec<&str> = lines.clone();
                        out.insert(i, lines[i]);
                        s = out.join("\n");
                    }
                    5 => {
                        // Drop a line.
                        let mut lines: Vec<&str> = s.lines().collect();
                        if !lines.is_empty() {
                            let i = n % lines.len();
                            lines.remove(i);
                        }
                        s = lines.join("\n");
                    }
                    6 => {
                        // Replace a word-ish run with another token.
                        let words = [
                            "terminal", "on", "action", "parallel", "map", "retry", "catch", "0",
                            "-1", "true", "~", "[]", "{}", "\"\"", "1e400", ".nan", "0x", "*a",
                            "&a",
                        ];
                        let end = s[at..]
                            .find([' ', '\n', ':', ',', '}'])
                            .map_or(s.len(), |i| at + i);
                        s.replace_range(at..end, words[n % words.len()]);
                    }
                    _ => s.insert_str(at, "\n  "),
                }
            }
            s
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_on_arbitrary_strings(src in ".{0,300}") {
            let _ = parse_definition(&src, ACTIONS);
        }

        #[test]
        fn never_panics_on_yamlish_strings(src in "[a-z_:{}\\[\\], \\n\\-\"'#&*!|>?.0-9]{0,200}") {
            let _ = parse_definition(&src, ACTIONS);
        }

        #[test]
        fn never_panics_on_mutations_of_the_contract(src in mutation()) {
            if let Err(e) = parse_definition(&src, ACTIONS) {
                prop_assert!(!e.problems.is_empty());
                // YAML breaks lines at \n, \r\n and a lone \r.
                let lines = src.split(['\n', '\r']).count();
                for p in &e.problems {
                    prop_assert!(p.line >= 1 && p.column >= 1, "{}", p);
                    prop_assert!(p.line <= lines + 1, "{} beyond {} lines", p, lines);
                }
                let mut sorted = e.problems.clone();
                sorted.sort_by_key(|p| (p.line, p.column));
                prop_assert_eq!(sorted, e.problems.clone());
            }
        }
    }
}
