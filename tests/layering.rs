//! The import structure of `src/`, checked from the source text: every `.rs` file's references to
//! other files of the crate (`crate::…`, `super::…`, `self::…`, child-module paths and, in
//! `main.rs`, `rcomet::…`) form a file-level dependency graph, which must have no cycle and no
//! edge that runs up the layers of [`LAYERS`]. A second test requires a `// SAFETY:` line at every
//! `syscall!` call site.
//!
//! Edges that are not dependencies: a parent module's `mod` declarations and `pub use`
//! re-exports of its own submodules (a name reached through such a re-export is resolved to the
//! submodule that defines it), and a file's references to itself. Comments and literals are
//! blanked before scanning; test code counts like any other code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Which top-level modules each top-level module may import; a file may always import the files
/// of its own top-level module. Lowest layer first:
///
/// * 0: `slab`, `http`, `ws`, `comet`, `config`, `daemon`, `notify`, `memory` — standalone, import nothing
///   of the crate; `logging` may import `config`; `engine` may import `slab`. (`daemon` and
///   `notify` sit here rather than at the top because `server` imports them.)
/// * 1: `api` may import `http`, `ws`, `comet`, `config`; `cluster` may import `comet`,
///   `config`, `engine`.
/// * 2: `worker` may import everything except `server`, `daemon` and `main`.
/// * 3: `server` may import `worker`, `engine`, `config`, `logging`, `daemon`, `notify`.
/// * top: `main` and `lib` (the crate root, which only declares the modules) may import anything.
const LAYERS: &[(&str, &[&str])] = &[
    ("slab", &[]),
    ("http", &[]),
    ("ws", &[]),
    ("comet", &[]),
    ("config", &[]),
    ("daemon", &[]),
    ("notify", &[]),
    ("memory", &[]),
    ("logging", &["config"]),
    ("engine", &["slab"]),
    ("api", &["http", "ws", "comet", "config"]),
    ("cluster", &["comet", "config", "engine", "memory"]),
    (
        "worker",
        &[
            "slab", "http", "ws", "comet", "config", "logging", "engine", "api", "cluster",
            "memory",
        ],
    ),
    (
        "server",
        &[
            "worker", "engine", "config", "logging", "daemon", "notify", "cluster",
        ],
    ),
    (
        "main",
        &[
            "slab", "http", "ws", "comet", "config", "daemon", "notify", "logging", "engine",
            "api", "cluster", "worker", "server", "lib", "memory",
        ],
    ),
    (
        "lib",
        &[
            "slab", "http", "ws", "comet", "config", "daemon", "notify", "logging", "engine",
            "api", "cluster", "worker", "server", "memory",
        ],
    ),
];

/// Known edges that break the rules, exempt from both checks. Each must still exist: an entry
/// whose import is gone fails the test, so that it is deleted with the import.
const KNOWN_EDGES: &[(&str, &str)] = &[];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn imports_form_no_cycle_and_never_run_up_the_layers() {
    let crate_files = CrateFiles::load(&src_dir());
    let graph = crate_files.graph();

    let known: BTreeSet<(String, String)> = KNOWN_EDGES
        .iter()
        .map(|&(from, to)| (from.to_string(), to.to_string()))
        .collect();
    let mut problems = Vec::new();
    for (from, to) in &known {
        if !graph.get(from).is_some_and(|deps| deps.contains(to)) {
            problems.push(format!(
                "known edge {from} -> {to} no longer exists: delete it from KNOWN_EDGES"
            ));
        }
    }
    let checked: Graph = graph
        .iter()
        .map(|(from, deps)| {
            let deps = deps
                .iter()
                .filter(|to| !known.contains(&(from.clone(), (*to).clone())))
                .cloned()
                .collect();
            (from.clone(), deps)
        })
        .collect();

    for component in cycles(&checked) {
        for cycle in shortest_cycles(&checked, &component) {
            problems.push(format!("import cycle: {}", cycle.join(" -> ")));
        }
    }

    for (from, deps) in &checked {
        let from_top = top_module(from);
        for to in deps {
            let to_top = top_module(to);
            if from_top == to_top {
                continue;
            }
            match allowed(&from_top) {
                None => problems.push(format!("{from}: module `{from_top}` is not in LAYERS")),
                Some(may) if !may.contains(&to_top.as_str()) => problems.push(format!(
                    "{from} -> {to}: `{from_top}` may not import `{to_top}` (it may import: {})",
                    if may.is_empty() {
                        "nothing of the crate".to_string()
                    } else {
                        may.join(", ")
                    }
                )),
                Some(_) => {}
            }
        }
    }

    if !problems.is_empty() {
        let mut report = String::from("the import graph breaks the layering rules:\n");
        for problem in &problems {
            report.push_str(&format!("  {problem}\n"));
        }
        report.push_str("every edge (file -> file it imports):\n");
        for (from, deps) in &graph {
            for to in deps {
                let note = if known.contains(&(from.clone(), to.clone())) {
                    "   (known)"
                } else {
                    ""
                };
                report.push_str(&format!("  {from} -> {to}{note}\n"));
            }
        }
        panic!("{report}");
    }
}

#[test]
fn the_scanner_sees_the_imports_it_must() {
    let graph = CrateFiles::load(&src_dir()).graph();
    let has = |from: &str, to: &str| graph.get(from).is_some_and(|deps| deps.contains(to));
    // `super::` from a file, a name re-exported by a parent, a macro exported at the crate root,
    // `rcomet::` in the binary and a `#[path]` test module.
    assert!(has("src/http/request.rs", "src/http/limits.rs"));
    assert!(has("src/api/params.rs", "src/http/query.rs"));
    assert!(has("src/engine/epoll.rs", "src/engine/sys.rs"));
    assert!(has("src/main.rs", "src/server.rs"));
    assert!(has("src/http/request_tests.rs", "src/http/request.rs"));
    // Re-exports and declarations of a parent's own submodules are not dependencies.
    assert!(!has("src/http/mod.rs", "src/http/limits.rs"));
    assert!(!has("src/lib.rs", "src/http/mod.rs"));
}

#[test]
fn every_syscall_site_has_a_safety_line() {
    let mut missing = Vec::new();
    for file in rust_files(&src_dir()) {
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || !code.contains("syscall!(") {
                continue;
            }
            // The comment block right above the statement must hold a SAFETY line.
            let argued = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim_start())
                .take_while(|l| l.starts_with("//") || l.starts_with("#["))
                .any(|l| l.starts_with("// SAFETY:"));
            if !argued {
                missing.push(format!("{}:{}: {}", relative(&file), i + 1, code));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "syscall! sites without a `// SAFETY:` line right above them:\n  {}",
        missing.join("\n  ")
    );
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `src/a/b.rs` as the test names files (relative to the package root, `/`-separated).
fn relative(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn allowed(top: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, may)| *may)
}

/// The top-level module a file belongs to: `src/http/request.rs` → `http`, `src/lib.rs` → `lib`.
fn top_module(file: &str) -> String {
    let rest = file.strip_prefix("src/").unwrap_or(file);
    let first = rest.split('/').next().unwrap_or(rest);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// Every source file of the crate with its module path and blanked text.
struct CrateFiles {
    /// Module path (`["http", "request"]`; `[]` for the crate root) → file.
    modules: BTreeMap<Vec<String>, String>,
    files: Vec<SourceFile>,
    /// (module path, name) → the file of the submodule a `pub use` there re-exports `name` from.
    reexports: BTreeMap<(Vec<String>, String), String>,
    /// Macros exported at the crate root (`#[macro_export]`) → the file defining them.
    macros: BTreeMap<String, String>,
}

struct SourceFile {
    name: String,
    /// The module the file is (`["main"]` for the binary).
    module: Vec<String>,
    /// The text with comments and literals blanked.
    code: String,
}

/// One path found in a file: its segments, the module it was written in and whether it sits in
/// a `pub use` item.
struct Reference {
    segments: Vec<String>,
    scope: Vec<String>,
    in_pub_use: bool,
}

impl CrateFiles {
    fn load(src: &Path) -> CrateFiles {
        let mut modules = BTreeMap::new();
        let mut raw = Vec::new();
        for file in rust_files(src) {
            let name = relative(&file);
            let text = fs::read_to_string(&file).unwrap();
            let module = default_module(&name);
            raw.push((file, name, module, text));
        }
        // `#[path = "x_tests.rs"] mod tests;` places a file under the declaring module.
        let mut overrides = BTreeMap::new();
        for (file, _, module, text) in &raw {
            for (path, child) in path_attributes(text) {
                let target = relative(&file.parent().unwrap().join(path));
                let mut child_module = module.clone();
                child_module.push(child);
                overrides.insert(target, child_module);
            }
        }
        let mut files = Vec::new();
        for (_, name, module, text) in raw {
            let module = overrides.remove(&name).unwrap_or(module);
            if name != "src/main.rs" {
                modules.insert(module.clone(), name.clone());
            }
            files.push(SourceFile {
                name,
                module,
                code: blank_comments_and_literals(&text),
            });
        }
        let mut crate_files = CrateFiles {
            modules,
            files,
            reexports: BTreeMap::new(),
            macros: BTreeMap::new(),
        };
        crate_files.find_reexports_and_macros();
        crate_files
    }

    fn find_reexports_and_macros(&mut self) {
        let mut reexports = BTreeMap::new();
        let mut macros = BTreeMap::new();
        for file in &self.files {
            for reference in self.references(file) {
                if !reference.in_pub_use {
                    continue;
                }
                let Some((module, rest)) = self.absolute(&reference) else {
                    continue;
                };
                let child_of_file = module.len() > file.module.len()
                    && module.starts_with(&file.module)
                    && reference.scope == file.module;
                if let (true, Some(name)) = (child_of_file, rest.first()) {
                    reexports.insert(
                        (file.module.clone(), name.clone()),
                        self.modules[&module].clone(),
                    );
                }
            }
            let mut exported = false;
            for word in file
                .code
                .split(|c: char| c.is_whitespace() || c == '!' || c == '{')
            {
                if word == "#[macro_export]" {
                    exported = true;
                } else if exported && !word.is_empty() && word != "macro_rules" {
                    macros.insert(word.to_string(), file.name.clone());
                    exported = false;
                }
            }
        }
        self.reexports = reexports;
        self.macros = macros;
    }

    fn graph(&self) -> Graph {
        let mut graph = Graph::new();
        for file in &self.files {
            let deps = graph.entry(file.name.clone()).or_default();
            for reference in self.references(file) {
                let Some(target) = self.target(&reference) else {
                    continue;
                };
                let target_module = self
                    .files
                    .iter()
                    .find(|f| f.name == target)
                    .map(|f| f.module.clone())
                    .unwrap_or_default();
                let reexport_of_own_child = reference.in_pub_use
                    && target_module.len() > file.module.len()
                    && target_module.starts_with(&file.module);
                if target != file.name && !reexport_of_own_child {
                    deps.insert(target);
                }
            }
        }
        graph
    }

    /// The module a reference names (resolved from the crate root) and the segments after it.
    fn absolute(&self, reference: &Reference) -> Option<(Vec<String>, Vec<String>)> {
        let mut segments = reference.segments.iter();
        let mut module = match segments.as_slice().first().map(String::as_str) {
            Some("crate" | "rcomet") => {
                segments.next();
                Vec::new()
            }
            Some("self") => {
                segments.next();
                reference.scope.clone()
            }
            Some("super") => {
                let mut module = reference.scope.clone();
                while segments.as_slice().first().map(String::as_str) == Some("super") {
                    segments.next();
                    module.pop()?;
                }
                module
            }
            Some(_) => reference.scope.clone(),
            None => return None,
        };
        let mut rest: Vec<String> = segments.cloned().collect();
        while let Some(first) = rest.first() {
            let mut deeper = module.clone();
            deeper.push(first.clone());
            if !self.modules.contains_key(&deeper) {
                break;
            }
            module = deeper;
            rest.remove(0);
        }
        Some((module, rest))
    }

    /// The file a reference depends on, if it names part of the crate.
    fn target(&self, reference: &Reference) -> Option<String> {
        let (module, rest) = self.absolute(reference)?;
        let item = rest.first().filter(|name| *name != "self" && *name != "*");
        if let Some(name) = item {
            if module.is_empty() {
                if let Some(file) = self.macros.get(name) {
                    return Some(file.clone());
                }
            }
            if let Some(file) = self.reexports.get(&(module.clone(), name.clone())) {
                return Some(file.clone());
            }
        }
        self.modules.get(&module).cloned()
    }

    /// Every path in `file` that may name part of the crate.
    fn references(&self, file: &SourceFile) -> Vec<Reference> {
        let tokens = tokenize(&file.code);
        let mut found = Vec::new();
        // Inline modules open at a brace depth; the scope is the file's module plus those open.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut pub_use_until: Option<usize> = None;
        let mut i = 0;
        while i < tokens.len() {
            let token = tokens[i].as_str();
            match token {
                "{" => depth += 1,
                "}" => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                }
                "mod" if tokens.get(i + 2).map(String::as_str) == Some("{") => {
                    if let Some(name) = tokens.get(i + 1) {
                        inline.push((name.clone(), depth));
                    }
                }
                "use" if is_pub_use(&tokens, i) => {
                    pub_use_until = tokens[i..].iter().position(|t| t == ";").map(|p| i + p);
                }
                _ => {}
            }
            if pub_use_until.is_some_and(|end| i > end) {
                pub_use_until = None;
            }
            let mut scope = file.module.clone();
            if file.name == "src/main.rs" {
                scope.clear();
            }
            scope.extend(inline.iter().map(|(name, _)| name.clone()));
            let starts_path = tokens.get(i + 1).map(String::as_str) == Some("::")
                && i.checked_sub(1).is_none_or(|p| tokens[p] != "::")
                && (matches!(token, "crate" | "super" | "self")
                    || (token == "rcomet" && file.name == "src/main.rs")
                    || self.is_child(&scope, token));
            if starts_path {
                let (paths, next) = parse_tree(&tokens, i);
                for segments in paths {
                    found.push(Reference {
                        segments,
                        scope: scope.clone(),
                        in_pub_use: pub_use_until.is_some(),
                    });
                }
                i = next.max(i + 1);
                continue;
            }
            i += 1;
        }
        found
    }

    fn is_child(&self, scope: &[String], name: &str) -> bool {
        let mut child = scope.to_vec();
        child.push(name.to_string());
        self.modules.contains_key(&child)
    }
}

/// Whether the `use` at `at` is public (`pub use`, `pub(crate) use`, `pub(super) use`).
fn is_pub_use(tokens: &[String], at: usize) -> bool {
    let before: Vec<&str> = tokens[at.saturating_sub(4)..at]
        .iter()
        .map(String::as_str)
        .collect();
    before.last() == Some(&"pub")
        || before.ends_with(&["pub", "(", "crate", ")"])
        || before.ends_with(&["pub", "(", "super", ")"])
}

/// The module a file is by its place: `src/a/mod.rs` and `src/a.rs` → `a`, `src/lib.rs` → root.
fn default_module(name: &str) -> Vec<String> {
    let rest = name.strip_prefix("src/").unwrap_or(name);
    let rest = rest.strip_suffix(".rs").unwrap_or(rest);
    let mut parts: Vec<String> = rest.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" => Vec::new(),
        _ => parts,
    }
}

/// `(path, module name)` of every `#[path = "..."] mod name;` in `text`.
fn path_attributes(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[path = \"") {
        rest = &rest[at + "#[path = \"".len()..];
        let Some(end) = rest.find('"') else { break };
        let path = rest[..end].to_string();
        let after = &rest[end..];
        let Some(mod_at) = after.find("mod ") else {
            break;
        };
        let name: String = after[mod_at + 4..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        found.push((path, name));
    }
    found
}

/// Identifiers, `::` and single punctuation characters.
fn tokenize(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".to_string());
            i += 2;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    tokens
}

/// The paths of the use tree (or plain path) starting at `tokens[at]`, and the index after it.
fn parse_tree(tokens: &[String], at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = vec![tokens[at].clone()];
    let mut i = at + 1;
    while tokens.get(i).map(String::as_str) == Some("::") {
        match tokens.get(i + 1).map(String::as_str) {
            Some("{") => {
                let mut paths = Vec::new();
                i += 2;
                while i < tokens.len() && tokens[i] != "}" {
                    if tokens[i] == "," {
                        i += 1;
                        continue;
                    }
                    let (inner, next) = parse_tree(tokens, i);
                    paths.extend(inner.into_iter().map(|tail| {
                        let mut full = prefix.clone();
                        full.extend(tail);
                        full
                    }));
                    i = next.max(i + 1);
                    // Skip `as name` and anything else up to the next item.
                    while i < tokens.len() && tokens[i] != "," && tokens[i] != "}" {
                        i += 1;
                    }
                }
                return (paths, i + 1);
            }
            Some(next) if next == "*" || is_ident(next) => {
                prefix.push(next.to_string());
                i += 2;
            }
            _ => break,
        }
    }
    (vec![prefix], i)
}

/// The strongly connected components of more than one file, each sorted (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

/// For each file of a strongly connected `component`, a shortest cycle through it (first file
/// repeated at the end), without repeats: the cycles that make up the component.
fn shortest_cycles(graph: &Graph, component: &[String]) -> Vec<Vec<String>> {
    let members: BTreeSet<&String> = component.iter().collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in component {
        // Breadth-first from `start` back to it, inside the component.
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(node) = queue.pop_front() {
            for next in graph[node].iter().filter(|n| members.contains(n)) {
                if next == start {
                    closing = Some(node);
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        let Some(mut node) = closing else { continue };
        let mut cycle = vec![node.clone()];
        while node != start {
            node = came_from[node];
            cycle.push(node.clone());
        }
        cycle.reverse();
        // The same cycle found from another of its files: start each at its smallest file.
        let lowest = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
        cycle.rotate_left(lowest);
        cycle.push(cycle[0].clone());
        found.insert(cycle);
    }
    found.into_iter().collect()
}

fn is_ident(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// `text` with comments, string and character literals replaced by spaces (line ends kept), so
/// that only code is scanned. Lifetimes are kept.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut nesting = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    nesting += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    nesting -= 1;
                    i += 2;
                    if nesting == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_len(&chars[i..]).filter(|_| !ident_before(&chars, i)) {
            for &c in &chars[i..i + len] {
                blank(&mut out, c);
            }
            i += len;
        } else if c == '"' || (c == 'b' && next == Some('"') && !ident_before(&chars, i)) {
            let open = if c == 'b' { 2 } else { 1 };
            let mut j = i + open;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            for &c in &chars[i..(j + 1).min(chars.len())] {
                blank(&mut out, c);
            }
            i = j + 1;
        } else if c == '\'' || (c == 'b' && next == Some('\'') && !ident_before(&chars, i)) {
            let open = if c == 'b' { i + 1 } else { i };
            match char_literal_len(&chars[open..]) {
                Some(len) => {
                    for _ in i..open + len {
                        out.push(' ');
                    }
                    i = open + len;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], at: usize) -> bool {
    at.checked_sub(1)
        .is_some_and(|p| chars[p].is_alphanumeric() || chars[p] == '_')
}

/// Length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the start of `chars`.
fn raw_string_len(chars: &[char]) -> Option<usize> {
    let mut i = match chars {
        ['r', ..] => 1,
        ['b', 'r', ..] => 2,
        _ => return None,
    };
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

/// Length of a character literal at the start of `chars` (which starts with `'`), or `None` for
/// a lifetime.
fn char_literal_len(chars: &[char]) -> Option<usize> {
    match chars {
        ['\'', '\\', _, rest @ ..] => rest.iter().position(|&c| c == '\'').map(|p| p + 4),
        ['\'', _, '\'', ..] => Some(3),
        _ => None,
    }
}
