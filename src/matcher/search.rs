//! The complete search (the first pairing of spec lines with distinct
//! hardware lines in file order) and, in `reference`, the replay of the
//! reference's order on the same state; `run` chooses between them as the
//! parent module documents.
//!
//! State is changed in place and undone on backtrack (bindings through a
//! trail). After each assignment every remaining spec line must keep an
//! unused, consistent candidate (forward checking), the remaining lines
//! must still be able to get pairwise distinct candidates (a bipartite
//! matching kept up to date incrementally), and, after some dead ends, the
//! variables they share must keep a common value. The checks only reject
//! states without a solution, so the first solution found is the first in
//! order.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::{format_line, repr_str, Budget, Hardware, Match, Miss, NoMatch, Pattern, Specs};
use crate::hw::Line;

mod reference;

const NONE: usize = usize::MAX;

/// Receives a description of each search step.
pub(super) trait Tracer {
    fn event(&mut self, make: impl FnOnce() -> String);
}

/// Discards events; building their text is skipped entirely.
pub(super) struct Silent;

impl Tracer for Silent {
    #[inline(always)]
    fn event(&mut self, _make: impl FnOnce() -> String) {}
}

/// Keeps the first `max` events and counts the others.
pub(super) struct Recorder {
    max: usize,
    events: Vec<String>,
    skipped: usize,
}

impl Recorder {
    pub(super) fn new(max: usize) -> Recorder {
        Recorder {
            max,
            events: Vec::new(),
            skipped: 0,
        }
    }

    pub(super) fn finish(mut self) -> Vec<String> {
        if self.skipped > 0 {
            self.events.push(format!("... {} more steps", self.skipped));
        }
        self.events
    }
}

impl Tracer for Recorder {
    fn event(&mut self, make: impl FnOnce() -> String) {
        if self.events.len() < self.max {
            self.events.push(make());
        } else {
            self.skipped += 1;
        }
    }
}

/// Why a branch was abandoned, naming the blocking spec line.
#[derive(Clone, Copy)]
enum Block {
    /// The spec line has no unused hardware line consistent with the
    /// bindings.
    Empty(usize),
    /// Every remaining line has a candidate, but they cannot all get
    /// distinct ones; this line was left without.
    Crowded(usize),
}

impl Block {
    fn spec(self) -> usize {
        match self {
            Block::Empty(k) | Block::Crowded(k) => k,
        }
    }
}

#[derive(Clone, Copy)]
struct Frame {
    spec: usize,
    /// Range of `cand_data` still to look at.
    next: usize,
    end: usize,
    via: usize,
}

struct Search<'a, 'h, T: Tracer> {
    specs: &'a Specs,
    hw: &'h [Line],
    tracer: &'a mut T,
    /// Static candidates of spec line `k`: `cand_data[cand_start[k]..cand_start[k + 1]]`,
    /// in list order; the buckets of [`Search::pool`] follow them.
    cand_data: Vec<usize>,
    cand_start: Vec<usize>,
    /// Whether some hardware line is equal to spec line `k` (it pairs with
    /// it without binding anything, as in the reference's first pass).
    has_exact: Vec<bool>,
    /// Per spec line and variable position: candidates grouped by the value
    /// at that position, as ranges of `cand_data`; built on first use.
    buckets: Vec<Option<HashMap<&'h str, (usize, usize)>>>,
    /// `(spec line, position)` of each variable's last position in each
    /// spec line holding it, in file order (filled on first use).
    var_uses: Vec<Vec<(usize, usize)>>,
    /// Variables by decreasing number of spec lines holding them.
    var_order: Vec<usize>,
    /// The variable [`Search::shared_values`] is trying values of (`NONE`
    /// otherwise): bound, it is only compared at the last of its positions
    /// in each line.
    probe: usize,
    /// Also check that the variables shared by several remaining lines can
    /// still take a common value (turned on after some dead ends).
    deep: bool,
    dead_ends: usize,
    /// The complete search took back a choice.
    backtracked: bool,
    /// Place of each hardware line in the reference's list order: its
    /// index, or past the end once moved to the end by a retry (empty until
    /// the first move).
    order_key: Vec<usize>,
    /// Lines moved to the end, oldest first, with their previous keys.
    rotated: Vec<(usize, usize)>,
    /// Units of work spent emulating the reference.
    emulation_work: usize,
    /// The spec line on which the reference's order last found nothing
    /// (`NONE` before).
    hint: usize,
    /// No `$$` variable and no spec line equal to a hardware line.
    shortcut: bool,
    used: Vec<bool>,
    binding: Vec<Option<&'h str>>,
    /// Variables in binding order, unbound back to `trail_mark[d]` when spec
    /// line `d` is unassigned.
    trail: Vec<usize>,
    trail_mark: Vec<usize>,
    /// Hardware line assigned to each paired spec line.
    chosen: Vec<usize>,
    /// Smallest hardware line index still to try for each spec line.
    next: Vec<usize>,
    /// Matching of remaining spec lines to hardware lines (`NONE` if none).
    mate: Vec<usize>,
    owner: Vec<usize>,
    seen: Vec<u32>,
    stamp: u32,
    stack: Vec<Frame>,
    /// `(depth, block)` of the deepest block seen.
    deepest: Option<(usize, Block)>,
    budget: &'a Budget,
    /// Units of work (candidates looked at) since the clock was last read.
    work: usize,
    /// The budget ran out: every pending step gives up.
    over: bool,
}

/// Units of work between two looks at the clock: a few hundred
/// microseconds.
const WORK_PER_CLOCK: usize = 1 << 14;

/// Candidate lists longer than this are grouped by value for bound
/// variables ([`Search::pool`]).
const BUCKET_MIN: usize = 16;

/// Dead ends after which the shared-variable check runs too.
const DEEP_AFTER: usize = 16;

/// Most values a shared variable is tried with, one by one.
const PROBE_MAX: usize = 256;

pub(super) fn run<T: Tracer>(
    specs: &Specs,
    hw: &[Line],
    index: Option<&Hardware<'_>>,
    tracer: &mut T,
    budget: &Budget,
) -> Result<Match, Miss> {
    let n = specs.compiled.len();
    // Room for every line once: most lists need no growth.
    let mut cand_data = Vec::with_capacity(hw.len());
    let mut cand_start = Vec::with_capacity(n + 1);
    let mut has_exact = Vec::with_capacity(n);
    cand_start.push(0);
    for (line, text) in specs.compiled.iter().zip(&specs.lines) {
        // The index only skips lines whose class or key differ from the
        // spec line's literal ones, which could not fit anyway; the order
        // of the candidates stays the list order. A line equal to the spec
        // line has its class and key, literal or not.
        // A line of literals fits exactly the lines equal to it: its first
        // equal line is its first fitting line, and neither binds.
        let literals = line.patterns.iter().all(|p| matches!(p, Pattern::Literal));
        let mut exact = false;
        let mut fits = |h: &Line| match line.fits_or_equal(text, h) {
            Some(equal) => {
                exact |= equal;
                true
            }
            None => false,
        };
        let narrowed = index.and_then(|ix| ix.narrow(line.literal(text, 0), line.literal(text, 2)));
        match narrowed {
            Some(subset) => cand_data.extend(subset.iter().copied().filter(|&j| fits(&hw[j]))),
            None => cand_data.extend(
                hw.iter()
                    .enumerate()
                    .filter(|(_, h)| fits(h))
                    .map(|(j, _)| j),
            ),
        }
        has_exact.push(!literals && exact);
        cand_start.push(cand_data.len());
    }
    let mut search = Search {
        specs,
        hw,
        tracer,
        cand_data,
        cand_start,
        has_exact,
        buckets: Vec::new(),
        var_uses: Vec::new(),
        var_order: Vec::new(),
        probe: NONE,
        deep: false,
        dead_ends: 0,
        backtracked: false,
        order_key: Vec::new(),
        rotated: Vec::new(),
        emulation_work: 0,
        hint: NONE,
        shortcut: false,
        used: vec![false; hw.len()],
        binding: vec![None; specs.vars.len()],
        trail: Vec::with_capacity(specs.vars.len()),
        trail_mark: vec![0; n],
        chosen: vec![NONE; n],
        next: vec![0; n],
        mate: vec![NONE; n],
        owner: vec![NONE; hw.len()],
        seen: vec![0; hw.len()],
        stamp: 0,
        stack: Vec::new(),
        deepest: None,
        budget,
        work: 0,
        over: false,
    };
    if let Some(k) = (0..n).find(|&k| search.candidates(k).is_empty()) {
        search
            .tracer
            .event(|| format!("{} fits no hardware line at all", spec_text(specs, k)));
        let failure = NoMatch {
            spec_index: k,
            spec: specs.lines[k].clone(),
        };
        search.tracer.event(|| format!("no match: {failure}"));
        return Err(Miss::NoMatch(failure));
    }
    search.shortcut = specs.vars.iter().all(|v| !v.forced) && search.has_exact.iter().all(|&e| !e);
    // The complete search first: it says whether a match exists at all
    // (when none does the reference finds none either) and names the
    // failure.
    search
        .tracer
        .event(|| "complete search (spec lines in file order)".to_owned());
    match search.search() {
        Ok(()) => {}
        Err(_) if search.over => {
            search.tracer.event(|| "the time budget ran out".to_owned());
            return Err(Miss::OverBudget);
        }
        Err(k) => {
            let failure = NoMatch {
                spec_index: k,
                spec: specs.lines[k].clone(),
            };
            search.tracer.event(|| format!("no match: {failure}"));
            return Err(Miss::NoMatch(failure));
        }
    }
    if !search.backtracked && search.has_exact.iter().all(|&e| !e) {
        // Each spec line took the first line it fits, in list order, and
        // none was ever taken back: the reference makes the same choices,
        // with no retry.
        search
            .tracer
            .event(|| "match found, without backtracking: the reference's too".to_owned());
        return Ok(search.reference_result(&[]));
    }
    // Kept for when the reference's search finds no match (its variables
    // are only built then).
    let first = search.solution();
    for d in (0..n).rev() {
        search.unassign(d);
    }
    search
        .tracer
        .event(|| "the reference's search order".to_owned());
    match search.emulate() {
        reference::Outcome::Found(found) => {
            search.tracer.event(|| "match found".to_owned());
            Ok(found)
        }
        reference::Outcome::Over => {
            search.tracer.event(|| "the time budget ran out".to_owned());
            Err(Miss::OverBudget)
        }
        outcome => {
            search.tracer.event(|| match outcome {
                reference::Outcome::Abandoned(why) => format!(
                    "the reference's search {why}: match found beyond the reference's search"
                ),
                _ => "the reference's search finds no match: match found beyond the reference's search"
                    .to_owned(),
            });
            Ok(Match {
                beyond_reference: true,
                ..build_match(specs, &first.trail, &first.binding, &first.chosen)
            })
        }
    }
}

impl<'h, T: Tracer> Search<'_, 'h, T> {
    fn candidates(&self, k: usize) -> &[usize] {
        &self.cand_data[self.cand_start[k]..self.cand_start[k + 1]]
    }

    /// Whether hardware line `j` agrees with the variables already bound
    /// (the rest of spec line `k` was checked statically).
    fn consistent(&self, k: usize, j: usize) -> bool {
        let hw = &self.hw[j];
        let line = &self.specs.compiled[k];
        line.var_positions
            .iter()
            .all(|&(p, v)| match self.binding[v] {
                Some(bound) => bound == hw[p] || (v == self.probe && line.not_last[p]),
                None => true,
            })
    }

    /// Counts `units` of work; reads the clock now and then. True once the
    /// budget has run out.
    fn spend(&mut self, units: usize) -> bool {
        self.work += units;
        if self.work >= WORK_PER_CLOCK {
            self.work = 0;
            if self.budget.exceeded() {
                self.over = true;
            }
        }
        self.over
    }

    /// Whether hardware line `j` is equal to spec line `k`.
    fn exact(&self, k: usize, j: usize) -> bool {
        self.has_exact[k] && self.hw[j] == self.specs.lines[k]
    }

    fn viable(&self, k: usize, j: usize) -> bool {
        !self.used[j] && (self.consistent(k, j) || self.exact(k, j))
    }

    /// Range of `cand_data` holding, in list order, the candidates of spec
    /// line `k` that can agree with the bindings: all static candidates, or
    /// only those whose value at a bound variable's position is that
    /// variable's value.
    fn pool(&mut self, k: usize) -> (usize, usize) {
        let (start, end) = (self.cand_start[k], self.cand_start[k + 1]);
        if end - start <= BUCKET_MIN || self.has_exact[k] {
            return (start, end);
        }
        let specs = self.specs;
        let line = &specs.compiled[k];
        for (slot, &(p, v)) in line.var_positions.iter().enumerate() {
            let Some(value) = self.binding[v] else {
                continue;
            };
            if v == self.probe && line.not_last[p] {
                continue;
            }
            let key = k * 4 + slot;
            if self.buckets.is_empty() {
                self.buckets = vec![None; specs.compiled.len() * 4];
            }
            if self.buckets[key].is_none() {
                self.spend(end - start);
                let hw = self.hw;
                let mut groups: HashMap<&'h str, Vec<usize>> = HashMap::new();
                for &j in &self.cand_data[start..end] {
                    groups.entry(hw[j][p].as_str()).or_default().push(j);
                }
                let mut ranges = HashMap::with_capacity(groups.len());
                for (value, members) in groups {
                    let at = self.cand_data.len();
                    self.cand_data.extend(members);
                    ranges.insert(value, (at, self.cand_data.len()));
                }
                self.buckets[key] = Some(ranges);
            }
            return self.buckets[key]
                .as_ref()
                .and_then(|ranges| ranges.get(value).copied())
                .unwrap_or((0, 0));
        }
        (start, end)
    }

    /// Returns `Ok` once all spec lines are paired (see `chosen`), or the
    /// spec line to report.
    fn search(&mut self) -> Result<(), usize> {
        let (specs, hw) = (self.specs, self.hw);
        let n = self.specs.compiled.len();
        if n == 0 {
            return Ok(());
        }
        if let Some(k) = (0..n).find(|&k| self.candidates(k).is_empty()) {
            self.tracer
                .event(|| format!("{} fits no hardware line at all", spec_text(specs, k)));
            return Err(k);
        }
        if let Err(block) = self.propagate(0) {
            if self.over {
                return Err(0);
            }
            self.note_block(0, block);
            return Err(self.blocker());
        }
        let mut d = 0;
        loop {
            if self.spend(1) {
                return Err(d);
            }
            match self.next_viable(d) {
                Some(j) => {
                    self.next[d] = j + 1;
                    self.tracer
                        .event(|| format!("try {} with {}", spec_text(specs, d), hw_text(hw, j)));
                    let _ = self.assign(d, j);
                    match self.propagate(d + 1) {
                        Ok(()) if d + 1 == n => return Ok(()),
                        Ok(()) => {
                            d += 1;
                            self.next[d] = 0;
                        }
                        Err(block) => {
                            self.note_block(d + 1, block);
                            self.unassign(d);
                            self.dead_end();
                            self.backtracked = true;
                        }
                    }
                }
                None => {
                    if self.next[d] == 0 {
                        // Never reached after a successful propagation, kept
                        // so that the failure report stays well defined.
                        self.note_block(d, Block::Empty(d));
                    }
                    self.tracer.event(|| {
                        format!("{} has no hardware line left to try", spec_text(specs, d))
                    });
                    if d == 0 {
                        return Err(self.blocker());
                    }
                    self.backtracked = true;
                    d -= 1;
                    self.tracer
                        .event(|| format!("backtrack to {}", spec_text(specs, d)));
                    self.unassign(d);
                }
            }
        }
    }

    /// The first viable candidate of spec line `d` at or after `next[d]`.
    fn next_viable(&mut self, d: usize) -> Option<usize> {
        let (start, end) = self.pool(d);
        let from = self.next[d];
        let first = start + self.cand_data[start..end].partition_point(|&j| j < from);
        let mut looked = 0;
        let mut found = None;
        for idx in first..end {
            let j = self.cand_data[idx];
            looked += 1;
            if self.viable(d, j) {
                found = Some(j);
                break;
            }
        }
        self.spend(looked);
        found
    }

    /// Whether spec line `k` has a viable candidate.
    fn has_viable(&mut self, k: usize) -> bool {
        let (start, end) = self.pool(k);
        self.spend(end - start);
        self.cand_data[start..end]
            .iter()
            .any(|&j| self.viable(k, j))
    }

    /// Counts a dead end; after enough of them the deeper check is worth
    /// its cost.
    fn dead_end(&mut self) {
        self.dead_ends += 1;
        if self.dead_ends >= DEEP_AFTER {
            self.deep = true;
        }
    }

    /// Pairs spec line `d` with hardware line `j`; true when that binds a
    /// variable not bound before.
    fn assign(&mut self, d: usize, j: usize) -> bool {
        let exact = self.exact(d, j);
        self.used[j] = true;
        self.chosen[d] = j;
        self.trail_mark[d] = self.trail.len();
        let m = self.mate[d];
        if m != NONE {
            self.owner[m] = NONE;
            self.mate[d] = NONE;
        }
        if exact {
            return false;
        }
        let hw: &'h Line = &self.hw[j];
        let before = self.trail.len();
        // As the reference: a variable not bound before this line is bound
        // at each of its positions in turn, the last one winning.
        for &(p, v) in &self.specs.compiled[d].var_positions {
            if self.binding[v].is_none() || self.trail[before..].contains(&v) {
                if self.binding[v].is_none() {
                    self.trail.push(v);
                }
                self.binding[v] = Some(hw[p].as_str());
                self.tracer.event(|| {
                    format!(
                        "  bind {} = {}",
                        self.specs.vars[v].spelling(),
                        repr_str(&hw[p])
                    )
                });
            }
        }
        self.trail.len() > before
    }

    fn unassign(&mut self, d: usize) {
        self.used[self.chosen[d]] = false;
        self.chosen[d] = NONE;
        while self.trail.len() > self.trail_mark[d] {
            if let Some(v) = self.trail.pop() {
                self.binding[v] = None;
            }
        }
    }

    /// Checks that spec lines `first..` can still be paired, given the
    /// assignments and bindings so far.
    fn propagate(&mut self, first: usize) -> Result<(), Block> {
        self.distinct(first)?;
        if self.deep {
            self.shared_values(first)?;
        }
        Ok(())
    }

    /// Forward checking, then a matching giving spec lines `first..`
    /// distinct hardware lines.
    fn distinct(&mut self, first: usize) -> Result<(), Block> {
        let specs = self.specs;
        let n = self.specs.compiled.len();
        // Drop matching pairs invalidated by the last assignment.
        for k in first..n {
            let m = self.mate[k];
            if m != NONE && !self.viable(k, m) {
                self.owner[m] = NONE;
                self.mate[k] = NONE;
            }
        }
        self.spend(n - first);
        // A matched line has a candidate; only the others need a scan.
        for k in first..n {
            if self.mate[k] != NONE {
                continue;
            }
            let (start, end) = self.pool(k);
            if self.spend(end - start) {
                return Err(Block::Empty(k));
            }
            if !self.cand_data[start..end]
                .iter()
                .any(|&j| self.viable(k, j))
            {
                self.tracer.event(|| {
                    format!(
                        "  prune: {} has no unused hardware line consistent with the bindings",
                        spec_text(specs, k)
                    )
                });
                return Err(Block::Empty(k));
            }
        }
        for k in first..n {
            if self.mate[k] == NONE && !self.augment(k) {
                if self.over {
                    return Err(Block::Empty(k));
                }
                self.tracer.event(|| {
                    format!(
                        "  prune: spec lines {}..{} cannot all get distinct hardware lines, {} is left without",
                        first + 1,
                        n,
                        spec_text(specs, k)
                    )
                });
                return Err(Block::Crowded(k));
            }
        }
        Ok(())
    }

    /// Every unbound variable held by several of spec lines `first..` must
    /// have a value that each of them can give it; a line equal to its
    /// hardware line binds nothing and constrains nothing. Then the
    /// variable held by the most of them is tried with each such value (if
    /// there are at most [`PROBE_MAX`]): with none can the lines all get
    /// distinct hardware lines, the branch is cut.
    fn shared_values(&mut self, first: usize) -> Result<(), Block> {
        let specs = self.specs;
        let hw = self.hw;
        if self.var_uses.is_empty() && !specs.vars.is_empty() {
            let mut var_uses = vec![Vec::new(); specs.vars.len()];
            for (k, line) in specs.compiled.iter().enumerate() {
                for &(p, v) in &line.var_positions {
                    match var_uses[v].last_mut() {
                        // The last position of the variable in the line
                        // gives it its value.
                        Some((last, at)) if *last == k => *at = p,
                        _ => var_uses[v].push((k, p)),
                    }
                }
            }
            let mut var_order: Vec<usize> = (0..specs.vars.len()).collect();
            var_order.sort_by_key(|&v| std::cmp::Reverse(var_uses[v].len()));
            self.var_uses = var_uses;
            self.var_order = var_order;
        }
        let mut probe: Option<(usize, usize, Vec<&'h str>)> = None;
        for o in 0..self.var_order.len() {
            let v = self.var_order[o];
            if self.binding[v].is_some() {
                continue;
            }
            let uses = &self.var_uses[v];
            let from = uses.partition_point(|&(k, _)| k < first);
            if uses.len() - from < 2 {
                continue;
            }
            let mut common: Option<HashSet<&'h str>> = None;
            let mut first_line = NONE;
            for u in from..self.var_uses[v].len() {
                let (k, p) = self.var_uses[v][u];
                let (start, end) = self.pool(k);
                if self.spend(end - start) {
                    return Err(Block::Empty(k));
                }
                let mut values = HashSet::new();
                let mut free = false;
                for &j in &self.cand_data[start..end] {
                    if !self.viable(k, j) {
                        continue;
                    }
                    if self.exact(k, j) {
                        free = true;
                        break;
                    }
                    if common
                        .as_ref()
                        .is_none_or(|c| c.contains(hw[j][p].as_str()))
                    {
                        values.insert(hw[j][p].as_str());
                    }
                }
                if free {
                    continue;
                }
                if values.is_empty() {
                    self.tracer.event(|| {
                        format!(
                            "  prune: {} cannot give {} a value the earlier remaining lines can give it",
                            spec_text(specs, k),
                            specs.vars[v].spelling()
                        )
                    });
                    return Err(Block::Empty(k));
                }
                if first_line == NONE {
                    first_line = k;
                }
                common = Some(values);
            }
            if let Some(common) = common {
                if probe.is_none() && common.len() <= PROBE_MAX {
                    let mut values: Vec<&'h str> = common.into_iter().collect();
                    values.sort_unstable();
                    probe = Some((v, first_line, values));
                }
            }
        }
        let Some((v, line, values)) = probe else {
            return Ok(());
        };
        // While a value is tried, a line holding the variable several
        // times is only held to it at its last position: the line that
        // binds it compares nothing else.
        self.probe = v;
        for value in values {
            self.binding[v] = Some(value);
            let fits = self.distinct(first).is_ok();
            self.binding[v] = None;
            if self.over {
                self.probe = NONE;
                return Err(Block::Empty(line));
            }
            if fits {
                self.probe = NONE;
                return Ok(());
            }
        }
        self.probe = NONE;
        self.tracer.event(|| {
            format!(
                "  prune: with any value of {} the spec lines from {} on cannot all get distinct hardware lines",
                specs.vars[v].spelling(),
                spec_text(specs, line)
            )
        });
        Err(Block::Empty(line))
    }

    /// Looks for an augmenting path from spec line `root` (Kuhn's
    /// algorithm), iteratively so that long spec lists cannot overflow the
    /// stack.
    fn augment(&mut self, root: usize) -> bool {
        if self.stamp == u32::MAX {
            self.seen.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
        let (next, end) = self.pool(root);
        // A free candidate needs no path.
        let free = self.cand_data[next..end]
            .iter()
            .position(|&j| self.owner[j] == NONE && self.viable(root, j));
        self.spend(free.map_or(end - next, |at| at + 1));
        if let Some(at) = free {
            let j = self.cand_data[next + at];
            self.mate[root] = j;
            self.owner[j] = root;
            return true;
        }
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        stack.push(Frame {
            spec: root,
            next,
            end,
            via: NONE,
        });
        let found = loop {
            let Some(top) = stack.last_mut() else {
                break false;
            };
            let k = top.spec;
            let mut step = NONE;
            let mut looked = 0;
            while top.next < top.end {
                let j = self.cand_data[top.next];
                top.next += 1;
                looked += 1;
                if self.seen[j] != self.stamp && self.viable(k, j) {
                    self.seen[j] = self.stamp;
                    step = j;
                    break;
                }
            }
            if step == NONE {
                stack.pop();
            } else {
                top.via = step;
                let holder = self.owner[step];
                if holder == NONE {
                    break true;
                }
                let (next, end) = self.pool(holder);
                stack.push(Frame {
                    spec: holder,
                    next,
                    end,
                    via: NONE,
                });
            }
            if self.spend(looked) {
                break false;
            }
        };
        if found {
            for frame in &stack {
                self.mate[frame.spec] = frame.via;
                self.owner[frame.via] = frame.spec;
            }
        }
        self.stack = stack;
        found
    }

    fn note_block(&mut self, depth: usize, block: Block) {
        let deeper = match self.deepest {
            Some((seen, _)) => depth > seen,
            None => true,
        };
        if deeper {
            self.deepest = Some((depth, block));
        }
    }

    fn blocker(&self) -> usize {
        self.deepest.map_or(0, |(_, block)| block.spec())
    }

    fn result(&self) -> Match {
        build_match(self.specs, &self.trail, &self.binding, &self.chosen)
    }

    /// The state of a complete pairing, to build its [`Match`] later
    /// (only if it turns out to be needed).
    fn solution(&self) -> Solution<'h> {
        Solution {
            trail: self.trail.clone(),
            binding: self.binding.clone(),
            chosen: self.chosen.clone(),
        }
    }
}

/// A complete pairing as [`Search::solution`] keeps it.
struct Solution<'h> {
    trail: Vec<usize>,
    binding: Vec<Option<&'h str>>,
    chosen: Vec<usize>,
}

/// The variables of a complete pairing: bound variables in binding
/// order, a `$$` one also in `forced`.
fn build_match(
    specs: &Specs,
    trail: &[usize],
    binding: &[Option<&str>],
    chosen: &[usize],
) -> Match {
    let mut vars = IndexMap::with_capacity(trail.len());
    let mut forced = IndexMap::new();
    for &v in trail {
        let (Some(value), info) = (binding[v], &specs.vars[v]) else {
            continue;
        };
        if info.forced {
            forced.insert(info.name.clone(), value.to_owned());
            vars.insert(info.name.clone(), value.to_owned());
        } else if !forced.contains_key(&info.name) {
            vars.insert(info.name.clone(), value.to_owned());
        }
    }
    Match {
        vars,
        forced,
        pairing: chosen.to_vec(),
        beyond_reference: false,
    }
}

fn spec_text(specs: &Specs, k: usize) -> String {
    format!("spec line {} {}", k + 1, format_line(&specs.lines[k]))
}

fn hw_text(hw: &[Line], j: usize) -> String {
    format!("hardware line {} {}", j + 1, format_line(&hw[j]))
}
