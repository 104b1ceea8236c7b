//! The generated users of `bench/scale.rs` and the covering set of SCIM queries run over them:
//! every filterable attribute with each of its operators, then the remaining factors pairwise
//! (logic, selectivity, count, startIndex, sortBy). Each query carries the `totalResults` the
//! data must give, worked out here by evaluating the filter over the generated users with
//! SCIM's rules (case-insensitive text but for `id` and `externalId`; `emails` matches when
//! any address does).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const FAMILIES: [&str; 8] = [
    "Garcia", "Smith", "Nguyen", "Okafor", "Müller", "Kowalski", "Tanaka", "Silva",
];
const GIVENS: [&str; 13] = [
    "Alice", "Bob", "Chloé", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo",
];
const MIDDLES: [&str; 3] = ["Ann", "Lee", "Marie"];
const PREFIXES: [&str; 4] = ["Ms.", "Mr.", "Dr.", "Mx."];
const SUFFIXES: [&str; 3] = ["Jr.", "Sr.", "III"];
const NICKS: [&str; 5] = ["Ace", "Bee", "Cat", "Dot", "Eve"];
const TITLES: [&str; 7] = [
    "Engineer",
    "Analyst",
    "Manager",
    "Designer",
    "Accountant",
    "Nurse",
    "Teacher",
];
const TYPES: [&str; 3] = ["Employee", "Contractor", "Intern"];
const LANGUAGES: [&str; 4] = ["en", "de", "fr", "ja"];
const LOCALES: [&str; 4] = ["en-US", "de-DE", "fr-FR", "ja-JP"];
const ZONES: [&str; 6] = [
    "America/New_York",
    "Europe/Berlin",
    "Europe/Paris",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "UTC",
];

/// The generated user number `i`, zero-padded so `userName sw "user0999"` matches 100 users
/// at 100,000 and at 1,000,000.
pub fn number(i: usize, users: usize) -> String {
    let width = (users.saturating_sub(1)).to_string().len().max(6);
    format!("{i:0width$}")
}

/// Whether user `i` has a second (home) address besides the primary work one.
fn has_home(i: usize) -> bool {
    i.is_multiple_of(3)
}

/// User `i`, every attribute filled.
pub fn user(i: usize, users: usize) -> Value {
    let n = number(i, users);
    let (family, given) = (FAMILIES[i % FAMILIES.len()], GIVENS[i % GIVENS.len()]);
    let mut emails = vec![
        json!({"value": format!("user{n}@example.com"), "type": "work",
                                 "primary": true, "display": format!("{given} at work")}),
    ];
    if has_home(i) {
        emails.push(
            json!({"value": format!("n{n}@home.example"), "type": "home",
                           "primary": false, "display": "home"}),
        );
    }
    json!({
        "schemas": [USER_SCHEMA],
        "userName": format!("user{n}"),
        "externalId": format!("ext-{n}"),
        "name": {
            "formatted": format!("{given} {family}"),
            "familyName": family,
            "givenName": given,
            "middleName": MIDDLES[i % MIDDLES.len()],
            "honorificPrefix": PREFIXES[i % PREFIXES.len()],
            "honorificSuffix": SUFFIXES[i % SUFFIXES.len()],
        },
        "displayName": format!("{given} {family} {n}"),
        "nickName": NICKS[i % NICKS.len()],
        "profileUrl": format!("https://example.com/people/{n}"),
        "title": TITLES[i % TITLES.len()],
        "userType": TYPES[i % TYPES.len()],
        "preferredLanguage": LANGUAGES[i % LANGUAGES.len()],
        "locale": LOCALES[i % LOCALES.len()],
        "timezone": ZONES[i % ZONES.len()],
        "active": !i.is_multiple_of(10),
        "emails": emails,
    })
}

/// A filterable attribute, by its SCIM name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    Text(&'static str),
    /// Compared exactly (`id`, `externalId`).
    Exact(&'static str),
    Bool(&'static str),
    Time(&'static str),
}

impl Attr {
    pub fn name(self) -> &'static str {
        match self {
            Self::Text(n) | Self::Exact(n) | Self::Bool(n) | Self::Time(n) => n,
        }
    }
}

pub const ATTRIBUTES: [Attr; 24] = [
    Attr::Exact("id"),
    Attr::Text("userName"),
    Attr::Exact("externalId"),
    Attr::Text("displayName"),
    Attr::Text("nickName"),
    Attr::Text("profileUrl"),
    Attr::Text("title"),
    Attr::Text("userType"),
    Attr::Text("preferredLanguage"),
    Attr::Text("locale"),
    Attr::Text("timezone"),
    Attr::Text("name.formatted"),
    Attr::Text("name.familyName"),
    Attr::Text("name.givenName"),
    Attr::Text("name.middleName"),
    Attr::Text("name.honorificPrefix"),
    Attr::Text("name.honorificSuffix"),
    Attr::Bool("active"),
    Attr::Text("emails.value"),
    Attr::Text("emails.type"),
    Attr::Text("emails.display"),
    Attr::Bool("emails.primary"),
    Attr::Time("meta.created"),
    Attr::Time("meta.lastModified"),
];

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// The loaded users as the server knows them: the generator's attributes plus the id and
/// creation time each 201 answered.
pub struct Data {
    pub users: usize,
    pub ids: Vec<String>,
    pub created: Vec<DateTime<Utc>>,
}

impl Data {
    /// The values of `attr` for user `i` (several for an email sub-attribute).
    pub fn values(&self, i: usize, attr: Attr) -> Vec<Val> {
        let n = number(i, self.users);
        let (family, given) = (FAMILIES[i % FAMILIES.len()], GIVENS[i % GIVENS.len()]);
        let text = |s: String| vec![Val::Text(s)];
        let pick = |list: &[&str]| text(list[i % list.len()].to_owned());
        let emails = |work: String, home: String| {
            let mut out = vec![Val::Text(work)];
            if has_home(i) {
                out.push(Val::Text(home));
            }
            out
        };
        match attr.name() {
            "id" => text(self.ids[i].clone()),
            "userName" => text(format!("user{n}")),
            "externalId" => text(format!("ext-{n}")),
            "displayName" => text(format!("{given} {family} {n}")),
            "nickName" => pick(&NICKS),
            "profileUrl" => text(format!("https://example.com/people/{n}")),
            "title" => pick(&TITLES),
            "userType" => pick(&TYPES),
            "preferredLanguage" => pick(&LANGUAGES),
            "locale" => pick(&LOCALES),
            "timezone" => pick(&ZONES),
            "name.formatted" => text(format!("{given} {family}")),
            "name.familyName" => text(family.to_owned()),
            "name.givenName" => text(given.to_owned()),
            "name.middleName" => pick(&MIDDLES),
            "name.honorificPrefix" => pick(&PREFIXES),
            "name.honorificSuffix" => pick(&SUFFIXES),
            "active" => vec![Val::Bool(!i.is_multiple_of(10))],
            "emails.value" => emails(format!("user{n}@example.com"), format!("n{n}@home.example")),
            "emails.type" => emails("work".into(), "home".into()),
            "emails.display" => emails(format!("{given} at work"), "home".into()),
            "emails.primary" => {
                let mut out = vec![Val::Bool(true)];
                if has_home(i) {
                    out.push(Val::Bool(false));
                }
                out
            }
            "meta.created" | "meta.lastModified" => vec![Val::Time(self.created[i])],
            other => panic!("no attribute {other}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn word(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }
}

const TEXT_OPS: [Op; 9] = [
    Op::Eq,
    Op::Ne,
    Op::Co,
    Op::Sw,
    Op::Ew,
    Op::Gt,
    Op::Ge,
    Op::Lt,
    Op::Le,
];
const TIME_OPS: [Op; 6] = [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];

/// A filter the bench both sends (as text) and evaluates (over [`Data`]).
#[derive(Clone, Debug)]
pub enum F {
    Cmp(Attr, Op, Val),
    Pr(Attr),
    And(Box<F>, Box<F>),
    Or(Box<F>, Box<F>),
    Not(Box<F>),
}

fn literal(value: &Val) -> String {
    match value {
        Val::Text(s) => serde_json::to_string(s).unwrap(),
        Val::Bool(b) => b.to_string(),
        Val::Time(t) => format!(
            "\"{}\"",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}

impl F {
    pub fn text(&self) -> String {
        match self {
            Self::Cmp(a, op, v) => format!("{} {} {}", a.name(), op.word(), literal(v)),
            Self::Pr(a) => format!("{} pr", a.name()),
            Self::And(a, b) => format!("{} and {}", a.text(), b.text()),
            Self::Or(a, b) => format!("({} or {})", a.text(), b.text()),
            Self::Not(a) => format!("not ({})", a.text()),
        }
    }

    pub fn matches(&self, data: &Data, i: usize) -> bool {
        match self {
            Self::And(a, b) => a.matches(data, i) && b.matches(data, i),
            Self::Or(a, b) => a.matches(data, i) || b.matches(data, i),
            Self::Not(a) => !a.matches(data, i),
            Self::Pr(attr) => data.values(i, *attr).iter().any(|v| match v {
                Val::Text(s) => !s.is_empty(),
                _ => true,
            }),
            Self::Cmp(attr, op, lit) => data
                .values(i, *attr)
                .iter()
                .any(|v| compare(*attr, v, *op, lit)),
        }
    }
}

fn compare(attr: Attr, value: &Val, op: Op, lit: &Val) -> bool {
    use std::cmp::Ordering;
    let ordering = |o: Ordering| match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        _ => unreachable!("{op:?} on an ordered value"),
    };
    match (value, lit) {
        (Val::Bool(a), Val::Bool(b)) => ordering(a.cmp(b)),
        (Val::Time(a), Val::Time(b)) => ordering(a.cmp(b)),
        (Val::Text(a), Val::Text(b)) => {
            let (a, b) = match attr {
                Attr::Exact(_) => (a.clone(), b.clone()),
                _ => (a.to_lowercase(), b.to_lowercase()),
            };
            match op {
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                _ => ordering(a.as_str().cmp(b.as_str())),
            }
        }
        _ => false,
    }
}

/// How many users a filter should match, as a bench query states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selectivity {
    One,
    Few,
    Most,
}

pub struct Query {
    pub name: String,
    pub params: Vec<(&'static str, String)>,
    pub expected: usize,
}

fn count(data: &Data, filter: &F) -> usize {
    (0..data.users).filter(|&i| filter.matches(data, i)).count()
}

/// A probe user in the middle of the data, and the value of `attr` there.
fn probe(data: &Data, attr: Attr) -> Val {
    data.values(data.users * 54_321 / 100_000, attr).remove(0)
}

/// The literal for `attr op …` that matches about as many users as `selectivity` asks,
/// where the attribute's values allow it.
fn literal_for(data: &Data, attr: Attr, op: Op, selectivity: Selectivity) -> Val {
    let Val::Text(value) = probe(data, attr) else {
        return match probe(data, attr) {
            Val::Bool(_) => Val::Bool(selectivity == Selectivity::Most),
            Val::Time(_) => {
                // created times are in load order: a quantile of them.
                let mut times = data.created.clone();
                times.sort();
                let q = match (op, selectivity) {
                    (Op::Gt | Op::Ge, Selectivity::Most) | (Op::Lt | Op::Le, Selectivity::Few) => {
                        0.01
                    }
                    (Op::Gt | Op::Ge, _) | (Op::Lt | Op::Le, Selectivity::Most) => 0.99,
                    _ => 0.5,
                };
                Val::Time(times[((times.len() - 1) as f64 * q) as usize])
            }
            Val::Text(_) => unreachable!(),
        };
    };
    let chars: Vec<char> = value.chars().collect();
    let cut = |from: usize, to: usize| -> String {
        chars[from.min(chars.len())..to.min(chars.len())]
            .iter()
            .collect()
    };
    let text = match op {
        Op::Eq | Op::Ne => value.clone(),
        // Three characters or more, as the issue asks of `co`.
        Op::Co => match selectivity {
            Selectivity::Most => cut(chars.len().saturating_sub(4), chars.len() - 1),
            _ => cut(chars.len().saturating_sub(6), chars.len()),
        },
        Op::Sw => match selectivity {
            Selectivity::Most => cut(0, 3),
            Selectivity::Few => cut(0, chars.len().saturating_sub(2)),
            Selectivity::One => value.clone(),
        },
        Op::Ew => match selectivity {
            Selectivity::Most => cut(chars.len().saturating_sub(3), chars.len()),
            _ => cut(chars.len().saturating_sub(5), chars.len()),
        },
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            // A quantile of the sorted values, lower-cased as the server compares them.
            let mut all: Vec<String> = (0..data.users)
                .step_by((data.users / 2000).max(1))
                .map(|i| match data.values(i, attr).remove(0) {
                    Val::Text(s) if matches!(attr, Attr::Exact(_)) => s,
                    Val::Text(s) => s.to_lowercase(),
                    _ => unreachable!(),
                })
                .collect();
            all.sort();
            let high = matches!(op, Op::Gt | Op::Ge);
            let q = match selectivity {
                Selectivity::Most if high => 0.02,
                Selectivity::Most => 0.98,
                _ if high => 0.999,
                _ => 0.001,
            };
            all[((all.len() - 1) as f64 * q) as usize].clone()
        }
    };
    Val::Text(text)
}

/// `startIndex` positions of a page of `count` in `total` matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    First,
    Middle,
    Last,
}

fn start_index(start: Start, total: usize, count: usize) -> usize {
    match start {
        Start::First => 1,
        Start::Middle => (total / 2).max(1),
        Start::Last => total.saturating_sub(count) + 1,
    }
}

const SORTS: [Option<&str>; 6] = [
    None,
    Some("userName"),
    Some("name.familyName"),
    Some("meta.lastModified"),
    Some("emails"),
    Some("title"),
];

fn query(
    data: &Data,
    name: String,
    filter: Option<&F>,
    count_: usize,
    start: Start,
    sort: Option<(&str, bool)>,
) -> Query {
    let expected = filter.map_or(data.users, |f| count(data, f));
    let mut params = vec![
        ("count", count_.to_string()),
        (
            "startIndex",
            start_index(start, expected, count_).to_string(),
        ),
    ];
    if let Some(f) = filter {
        params.push(("filter", f.text()));
    }
    if let Some((by, descending)) = sort {
        params.push(("sortBy", by.to_owned()));
        if descending {
            params.push(("sortOrder", "descending".to_owned()));
        }
    }
    let shown: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .rev()
        .collect();
    Query {
        name: format!("{name}: {}", shown.join("&")),
        params,
        expected,
    }
}

/// The covering set: at most 300 queries.
pub fn covering_set(data: &Data) -> Vec<Query> {
    let mut out = Vec::new();
    let selectivities = [Selectivity::One, Selectivity::Few, Selectivity::Most];
    let counts = [10, 1, 100];
    let mut turn = 0usize;
    // 1. Every attribute with each of its operators (and `pr`).
    for attr in ATTRIBUTES {
        let ops: &[Op] = match attr {
            Attr::Text(_) | Attr::Exact(_) => &TEXT_OPS,
            Attr::Bool(_) => &[Op::Eq, Op::Ne],
            Attr::Time(_) => &TIME_OPS,
        };
        for &op in ops {
            turn += 1;
            let selectivity = selectivities[turn % 3];
            let filter = F::Cmp(attr, op, literal_for(data, attr, op, selectivity));
            out.push(query(
                data,
                format!("{} {}", attr.name(), op.word()),
                Some(&filter),
                counts[turn % 3],
                Start::First,
                None,
            ));
        }
        out.push(query(
            data,
            format!("{} pr", attr.name()),
            Some(&F::Pr(attr)),
            10,
            Start::First,
            None,
        ));
    }
    // 2. The rest pairwise: logic × selectivity × count × startIndex × sortBy.
    for (logic, selectivity, count_, start, sort) in pairwise() {
        let filter = compound(data, logic, selectivity);
        let sort = sort.map(|by| (by, turn.is_multiple_of(2)));
        turn += 1;
        out.push(query(
            data,
            format!("{logic:?}/{selectivity:?}"),
            filter.as_ref(),
            count_,
            start,
            sort,
        ));
    }
    // 3. No filter: the whole list at its three depths.
    for start in [Start::First, Start::Middle, Start::Last] {
        out.push(query(data, "all".into(), None, 100, start, None));
    }
    assert!(out.len() <= 300, "{} queries", out.len());
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logic {
    Single,
    And,
    Or,
    Not,
}

/// A filter of the given shape and selectivity over the generated data.
fn compound(data: &Data, logic: Logic, selectivity: Selectivity) -> Option<F> {
    let user_name = Attr::Text("userName");
    let cmp = |attr: Attr, op: Op, s: &str| F::Cmp(attr, op, Val::Text(s.to_owned()));
    let probe_name = match probe(data, user_name) {
        Val::Text(s) => s,
        _ => unreachable!(),
    };
    let few_prefix = format!("user{}", &number(999, data.users)[..4]);
    let active = F::Cmp(Attr::Bool("active"), Op::Eq, Val::Bool(true));
    let b = Box::new;
    Some(match (logic, selectivity) {
        (Logic::Single, Selectivity::One) => cmp(user_name, Op::Eq, &probe_name),
        (Logic::Single, Selectivity::Few) => cmp(user_name, Op::Sw, &few_prefix),
        (Logic::Single, Selectivity::Most) => active,
        (Logic::And, Selectivity::One) => F::And(b(cmp(user_name, Op::Eq, &probe_name)), b(active)),
        (Logic::And, Selectivity::Few) => F::And(
            b(cmp(Attr::Text("name.givenName"), Op::Eq, "chloé")),
            b(cmp(Attr::Text("title"), Op::Eq, "Engineer")),
        ),
        (Logic::And, Selectivity::Most) => {
            F::And(b(active), b(cmp(Attr::Text("userType"), Op::Ne, "Intern")))
        }
        (Logic::Or, Selectivity::One) => F::Or(
            b(cmp(user_name, Op::Eq, &probe_name)),
            b(cmp(Attr::Exact("externalId"), Op::Eq, "no-such-id")),
        ),
        (Logic::Or, Selectivity::Few) => F::Or(
            b(cmp(user_name, Op::Sw, &few_prefix)),
            b(cmp(Attr::Text("emails.value"), Op::Co, "54321@")),
        ),
        (Logic::Or, Selectivity::Most) => {
            F::Or(b(active), b(cmp(Attr::Text("title"), Op::Eq, "Engineer")))
        }
        (Logic::Not, Selectivity::One) => F::Not(b(cmp(user_name, Op::Ne, &probe_name))),
        (Logic::Not, Selectivity::Few) => F::Not(b(active)),
        (Logic::Not, Selectivity::Most) => F::Not(b(cmp(Attr::Text("title"), Op::Eq, "Engineer"))),
    })
}

type Row = (Logic, Selectivity, usize, Start, Option<&'static str>);

/// A small set of rows in which every pair of values of any two factors occurs (greedy
/// all-pairs over logic 4 × selectivity 3 × count 3 × startIndex 3 × sortBy 6).
fn pairwise() -> Vec<Row> {
    let logics = [Logic::Single, Logic::And, Logic::Or, Logic::Not];
    let sels = [Selectivity::One, Selectivity::Few, Selectivity::Most];
    let counts = [1usize, 10, 100];
    let starts = [Start::First, Start::Middle, Start::Last];
    let sizes = [
        logics.len(),
        sels.len(),
        counts.len(),
        starts.len(),
        SORTS.len(),
    ];
    let mut all = Vec::new();
    for a in 0..sizes[0] {
        for b in 0..sizes[1] {
            for c in 0..sizes[2] {
                for d in 0..sizes[3] {
                    for e in 0..sizes[4] {
                        all.push([a, b, c, d, e]);
                    }
                }
            }
        }
    }
    let pairs_of = |row: &[usize; 5]| {
        let mut pairs = Vec::new();
        for x in 0..5 {
            for y in x + 1..5 {
                pairs.push((x, row[x], y, row[y]));
            }
        }
        pairs
    };
    let mut uncovered: std::collections::HashSet<_> = all.iter().flat_map(&pairs_of).collect();
    let mut chosen = Vec::new();
    while !uncovered.is_empty() {
        let best = all
            .iter()
            .max_by_key(|row| {
                pairs_of(row)
                    .iter()
                    .filter(|p| uncovered.contains(p))
                    .count()
            })
            .copied()
            .unwrap();
        for pair in pairs_of(&best) {
            uncovered.remove(&pair);
        }
        chosen.push(best);
    }
    chosen
        .into_iter()
        .map(|[a, b, c, d, e]| (logics[a], sels[b], counts[c], starts[d], SORTS[e]))
        .collect()
}
