//! The plain-data form of a flow, produced once by Python (`Flow._lower()`) and compiled by `graph`.
//!
//! Nothing here refers to Python: atoms are identified by their index in `FlowSpec::atoms`, which is
//! also their index everywhere else in the core (compiled graph, scheduler arrays, store rows).
use std::sync::Arc;

/// An atom's name or one of its argument names: up to 24 bytes kept inline, without an allocation
/// (a 100,000-atom flow lowers some 400,000 of them; each `String` cost an allocation and a free).
pub type Name = compact_str::CompactString;

/// What an atom is; retries control the atoms of the flow they are attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomKind {
    Task,
    Retry,
}

/// One atom, with its argument names already mapped to *storage* names (rebind applied, injected
/// arguments removed), exactly as TaskFlow's `Atom.requires` / `optional` / `provides` expose them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomSpec {
    pub name: Name,
    pub kind: AtomKind,
    pub version: Name,
    /// Higher runs first among atoms ready at the same time.
    pub priority: i32,
    /// Storage names `execute` needs.
    pub requires: Vec<Name>,
    /// Storage names `execute` takes when they can be found (arguments with defaults).
    pub optional: Vec<Name>,
    /// Storage names `revert` needs / takes when available, when they are not `execute`'s
    /// (`None`: the same names, the usual case, kept once).
    pub revert: Option<Box<RevertNames>>,
    /// Storage names the result is saved under.
    pub provides: Vec<Name>,
}

/// An atom's `revert` arguments, when they differ from its `execute` ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevertNames {
    pub requires: Vec<Name>,
    pub optional: Vec<Name>,
}

impl AtomSpec {
    /// A task with the given requirements and provides; the rest defaulted (handy in tests).
    pub fn task(name: &str, requires: &[&str], provides: &[&str]) -> Self {
        AtomSpec {
            name: name.into(),
            kind: AtomKind::Task,
            version: "1.0".into(),
            priority: 0,
            requires: requires.iter().map(|s| Name::new(s)).collect(),
            optional: Vec::new(),
            // (a task made here reverts with no arguments)
            revert: (!requires.is_empty()).then(Box::default),
            provides: provides.iter().map(|s| Name::new(s)).collect(),
        }
    }

    /// The atom with `revert` taking `requires` / `optional` (kept once when they are its
    /// `execute` names).
    #[must_use]
    pub fn with_revert(mut self, requires: Vec<Name>, optional: Vec<Name>) -> Self {
        self.revert = (requires != self.requires || optional != self.optional)
            .then(|| Box::new(RevertNames { requires, optional }));
        self
    }

    /// Storage names `revert` needs.
    pub fn revert_requires(&self) -> &[Name] {
        self.revert.as_ref().map_or(&self.requires, |revert| &revert.requires)
    }

    /// Storage names `revert` takes when they can be found.
    pub fn revert_optional(&self) -> &[Name] {
        self.revert.as_ref().map_or(&self.optional, |revert| &revert.optional)
    }
}

/// How the children of a flow are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Each child runs after the previous one.
    Linear,
    /// No order between children; siblings cannot see each other's results.
    Unordered,
    /// Order given by `links` (inferred from requires/provides at `add()` time, or manual).
    Graph,
}

/// How far a decider that says "no" propagates (TaskFlow's `deciders.Depth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeciderDepth {
    Atom = 0,
    Neighbors = 1,
    Flow = 2,
    All = 3,
}

/// An edge between two children of a graph flow (indices into `FlowNode::children`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    pub from: usize,
    pub to: usize,
    /// Added by `link()` rather than inferred.
    pub manual: bool,
    /// Opaque id of a Python decider callable (the engine keeps the callables); `None` = no decider.
    pub decider: Option<u32>,
    pub depth: DeciderDepth,
}

/// A flow in the pattern tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowNode {
    pub name: String,
    pub pattern: Pattern,
    /// Index of the retry atom controlling this flow's atoms, if any.
    pub retry: Option<usize>,
    pub children: Vec<Node>,
    /// (shared: a lowered graph flow's links, kept in Rust, go to each compile without a copy)
    pub links: Arc<Vec<LinkSpec>>,
}

/// A node of the pattern tree: an atom (by index) or a nested flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Atom(usize),
    /// (boxed: a flow of 100,000 atoms has as many `Atom` children, each the size of this variant)
    Flow(Box<FlowNode>),
}

/// A whole flow: every atom once, and the pattern tree that refers to them by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    pub atoms: Vec<AtomSpec>,
    pub root: Node,
}
