//! Conditions of the `$everything` and `$lastn` operations, as SQL over the index tables. They are
//! [`Predicate::Operation`](super::Predicate::Operation)s, so they run through the ordinary search
//! (keyset paging, includes, totals) on both engines.

use super::{Builder, Clause};
use crate::sql::{Arg, Dialect};

/// A compartment: the resources that one of their listed reference parameters links to an owner
/// (`Patient/123`), and the owner itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compartment {
    /// The owner's resource type (`Patient`).
    pub owner_type: String,
    /// The owner's id; `None`: the compartments of every resource of `owner_type` together.
    pub owner_id: Option<String>,
    /// For each resource type in the compartment, the reference parameters that link it to the
    /// owner (from the CompartmentDefinition).
    pub params: Vec<(String, Vec<String>)>,
}

/// `$lastn`: of the candidates, the newest `max` per subject and code.
#[derive(Debug, Clone, PartialEq)]
pub struct LastN {
    /// How many resources to keep per subject and code.
    pub max: u32,
    /// The reference parameter that names the subject (`subject`).
    pub subject_param: String,
    /// The token parameter whose `system|code` values group the resources (`code`).
    pub code_param: String,
    /// The date parameter that orders them, newest (largest end of range) first (`date`).
    pub date_param: String,
    /// Only groups of these codes (`system`/`code` as in [`Predicate::Token`](super::Predicate::Token));
    /// empty: every code.
    pub codes: Vec<(Option<String>, Option<String>)>,
    /// Conditions every candidate meets (all must hold).
    pub clauses: Vec<Clause>,
}

/// A condition of an operation, on the resource type being searched.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationFilter {
    /// The resource is in the compartment (or is its owner).
    InCompartment(Compartment),
    /// The resource is referenced by a resource in the compartment or by its owner.
    ReferencedFrom(Compartment),
    /// The resource is among the newest of its subject and code.
    LastN(LastN),
}

impl Builder {
    /// The SQL condition of an operation filter on the resource row aliased `a`.
    pub(super) fn operation(&mut self, a: &str, filter: &OperationFilter) -> String {
        match filter {
            OperationFilter::InCompartment(c) => self.in_compartment(a, c),
            OperationFilter::ReferencedFrom(c) => self.referenced_from(a, c),
            OperationFilter::LastN(l) => self.last_n(a, l),
        }
    }

    /// The reference row `alias` points at the owner (without an owner id: at a live resource of
    /// the owner's type).
    fn points_at_owner(&mut self, alias: &str, c: &Compartment) -> String {
        let owner_type = self.text(&c.owner_type);
        let target = match &c.owner_id {
            Some(id) => format!("{alias}.target_id = {}", self.text(id)),
            None => format!(
                "{alias}.target_id IN (SELECT {alias}o.id FROM resources {alias}o \
                 WHERE {alias}o.resource_type = {owner_type} AND {alias}o.deleted = FALSE)"
            ),
        };
        format!("{alias}.target_type = {owner_type} AND {target}")
    }

    fn in_list(&mut self, values: &[String]) -> String {
        let list: Vec<String> = values.iter().map(|v| self.text(v)).collect();
        list.join(", ")
    }

    fn in_compartment(&mut self, a: &str, c: &Compartment) -> String {
        let rt = self.current_type.clone();
        let mut alternatives = Vec::new();
        if rt == c.owner_type {
            alternatives.push(match &c.owner_id {
                Some(id) => format!("{a}.id = {}", self.text(id)),
                None => "1 = 1".to_string(),
            });
        }
        if let Some((_, params)) = c.params.iter().find(|(t, _)| *t == rt)
            && !params.is_empty()
        {
            self.depth += 1;
            let m = format!("m{}", self.depth);
            let t = self.text(&rt);
            let list = self.in_list(params);
            let owner = self.points_at_owner(&m, c);
            alternatives.push(format!(
                "{a}.id IN (SELECT {m}.id FROM idx_reference {m} WHERE {m}.resource_type = {t} \
                 AND {m}.param IN ({list}) AND {owner})"
            ));
        }
        if alternatives.is_empty() {
            return "1 = 0".to_string();
        }
        format!("({})", alternatives.join(" OR "))
    }

    fn referenced_from(&mut self, a: &str, c: &Compartment) -> String {
        let rt = self.current_type.clone();
        self.depth += 1;
        let (m, f) = (format!("m{}", self.depth), format!("f{}", self.depth));
        // Members of the compartment: their linking parameter points at the owner.
        let mut members = Vec::new();
        for (member_type, params) in c.params.iter().filter(|(_, p)| !p.is_empty()) {
            let t = self.text(member_type);
            let list = self.in_list(params);
            members.push(format!(
                "({m}.resource_type = {t} AND {m}.param IN ({list}))"
            ));
        }
        let owner = self.points_at_owner(&m, c);
        let target = self.text(&rt);
        let mut alternatives = Vec::new();
        if !members.is_empty() {
            alternatives.push(format!(
                "{a}.id IN (SELECT {f}.target_id FROM idx_reference {m} JOIN idx_reference {f} \
                 ON {f}.resource_type = {m}.resource_type AND {f}.id = {m}.id \
                 WHERE {owner} AND ({}) AND {f}.target_type = {target})",
                members.join(" OR ")
            ));
        }
        // What the owner itself references.
        let owner_type = self.text(&c.owner_type);
        let target = self.text(&rt);
        let owner_id = match &c.owner_id {
            Some(id) => format!(" AND {f}.id = {}", self.text(id)),
            None => String::new(),
        };
        alternatives.push(format!(
            "{a}.id IN (SELECT {f}.target_id FROM idx_reference {f} \
             WHERE {f}.resource_type = {owner_type}{owner_id} AND {f}.target_type = {target})"
        ));
        format!("({})", alternatives.join(" OR "))
    }

    fn last_n(&mut self, a: &str, l: &LastN) -> String {
        let rt = self.current_type.clone();
        self.depth += 1;
        let d = self.depth;
        let (c, k, g, dt, x, w) = (
            format!("c{d}"),
            format!("k{d}"),
            format!("g{d}"),
            format!("d{d}"),
            format!("x{d}"),
            format!("w{d}"),
        );
        let t = self.text(&rt);
        let code_param = self.text(&l.code_param);
        let subject_param = self.text(&l.subject_param);
        let date_param = self.text(&l.date_param);
        let mut codes = Vec::new();
        for (system, code) in &l.codes {
            let mut conds = Vec::new();
            if let Some(code) = code {
                conds.push(format!("{k}.code = {}", self.text(code)));
            }
            if let Some(system) = system {
                conds.push(format!("{k}.system = {}", self.text(system)));
            }
            if conds.is_empty() {
                conds.push("1 = 1".into());
            }
            codes.push(format!("({})", conds.join(" AND ")));
        }
        let code_filter = if codes.is_empty() {
            String::new()
        } else {
            format!(" AND ({})", codes.join(" OR "))
        };
        let mut candidate = vec![
            format!("{c}.resource_type = {t}"),
            format!("{c}.deleted = FALSE"),
        ];
        for clause in &l.clauses {
            candidate.push(self.clause(&c, &rt, clause));
        }
        let max = self.arg(Arg::Int(i64::from(l.max)));
        let (kp, gp, dp) = (
            self.unindexed(&format!("{k}.param")),
            self.unindexed(&format!("{g}.param")),
            self.unindexed(&format!("{dt}.param")),
        );
        // One row per (resource, subject, code) with the resource's newest date, ranked within
        // its subject and code: newest first (no date last), then by id for a stable choice
        // among equal dates. The candidates drive; their index rows are found by owner.
        format!(
            "{a}.id IN (SELECT {w}.id FROM (SELECT {x}.id, ROW_NUMBER() OVER (\
             PARTITION BY {x}.target_type, {x}.target_id, {x}.system, {x}.code \
             ORDER BY ({x}.newest IS NULL), {x}.newest DESC, {x}.id DESC) AS rn FROM (\
             SELECT {c}.id, {k}.system, {k}.code, {g}.target_type, {g}.target_id, \
             MAX({dt}.hi) AS newest FROM resources {c} \
             JOIN idx_token {k} ON {k}.resource_type = {c}.resource_type AND {k}.id = {c}.id \
             AND {kp} = {code_param}{code_filter} \
             LEFT JOIN idx_reference {g} ON {g}.resource_type = {c}.resource_type \
             AND {g}.id = {c}.id AND {gp} = {subject_param} \
             LEFT JOIN idx_date {dt} ON {dt}.resource_type = {c}.resource_type \
             AND {dt}.id = {c}.id AND {dp} = {date_param} \
             WHERE {} GROUP BY {c}.id, {k}.system, {k}.code, {g}.target_type, {g}.target_id\
             ) {x}) {w} WHERE {w}.rn <= {max})",
            candidate.join(" AND ")
        )
    }

    /// A column that must not select the index of a joined table. Without statistics (a new
    /// or freshly loaded database) both engines would look a candidate's index rows up through
    /// (type, param, ...) rather than through their owner (type, id), scanning every row of the
    /// parameter for each candidate. An expression cannot use the index: unary `+` in SQLite
    /// (its documented idiom), `|| ''` in PostgreSQL.
    fn unindexed(&self, column: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("+{column}"),
            Dialect::Postgres => format!("({column} || '')"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Predicate, SearchSpec, statements};

    fn spec(resource_type: &str, filter: OperationFilter) -> SearchSpec {
        SearchSpec {
            resource_type: resource_type.into(),
            clauses: vec![Clause::AnyOf {
                predicates: vec![Predicate::Operation(Box::new(filter))],
                negated: false,
            }],
            sort: Vec::new(),
            count: 10,
            after: None,
            total: true,
            includes: Vec::new(),
        }
    }

    fn compartment(owner_id: Option<&str>) -> Compartment {
        Compartment {
            owner_type: "Patient".into(),
            owner_id: owner_id.map(String::from),
            params: vec![
                (
                    "Observation".into(),
                    vec!["subject".into(), "performer".into()],
                ),
                ("Patient".into(), vec!["link".into()]),
            ],
        }
    }

    /// Each placeholder in the text has an argument, numbered in order.
    fn placeholders_match(text: &str, args: usize, prefix: char) {
        for n in 1..=args {
            assert!(
                text.contains(&format!("{prefix}{n}")),
                "no {prefix}{n} in {text}"
            );
        }
        assert!(!text.contains(&format!("{prefix}{}", args + 1)));
    }

    #[test]
    fn compartment_membership_sql() {
        let ((page, args), count) = statements(
            Dialect::Postgres,
            &spec(
                "Patient",
                OperationFilter::InCompartment(compartment(Some("p1"))),
            ),
        );
        assert!(page.contains("r.id = $"), "{page}");
        assert!(page.contains("param IN ("), "{page}");
        placeholders_match(&page, args.len(), '$');
        assert!(count.is_some());
        let ((page, _), _) = statements(
            Dialect::Sqlite,
            &spec(
                "Practitioner",
                OperationFilter::InCompartment(compartment(Some("p1"))),
            ),
        );
        assert!(page.contains("1 = 0"), "not in the compartment: {page}");
    }

    #[test]
    fn referenced_and_lastn_sql() {
        let ((page, args), _) = statements(
            Dialect::Sqlite,
            &spec(
                "Practitioner",
                OperationFilter::ReferencedFrom(compartment(None)),
            ),
        );
        assert!(page.contains("JOIN idx_reference"), "{page}");
        placeholders_match(&page, args.len(), '?');
        let ((page, args), _) = statements(
            Dialect::Postgres,
            &spec(
                "Observation",
                OperationFilter::LastN(LastN {
                    max: 2,
                    subject_param: "subject".into(),
                    code_param: "code".into(),
                    date_param: "date".into(),
                    codes: vec![(Some("http://loinc.org".into()), Some("8867-4".into()))],
                    clauses: Vec::new(),
                }),
            ),
        );
        assert!(page.contains("ROW_NUMBER() OVER"), "{page}");
        placeholders_match(&page, args.len(), '$');
    }
}
