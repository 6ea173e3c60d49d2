//! The seeds check: every table or collection a service reads, as
//! `service-matrix.yaml` says under `reads` (store -> database -> names), is
//! created by the umbrella's seed for that store.
//!
//! An umbrella seeds a Bitnami store through the chart's own init-script
//! values (`<store>.initdbScriptsConfigMap` or `<store>.initdbScripts` in its
//! `values.yaml`), from the files under `<umbrella>/seed/<store>/`. The files
//! are parsed, not searched for words: `.sql` files with a MySQL SQL parser
//! (`CREATE DATABASE`, `USE`, `CREATE TABLE [db.]name`; account statements,
//! whose MySQL syntax the parser lacks, are only split off), `.js` files with a
//! JavaScript parser, following the mongosh idioms the seeds use
//! (`const x = db.getSiblingDB("d")` or `db = db.getSiblingDB("d")`, then
//! `x.createCollection("c")`, `x.c.<method>(...)` or
//! `x.getCollection("c").<method>(...)`). A script that does not parse fails
//! the check, naming the file.
//!
//! Each problem names the service and what it reads, and the file or value
//! that should provide it. It runs in `cargo xtask lint` next to the matrix
//! check (see `consistency::check_repository`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use yaml_serde::Value;

use crate::core::context::Context;
use crate::core::matrix::{scalar_text, ServiceMatrix};
use crate::core::model::{Chart, ChartKind, Repo};

/// (database, table or collection).
type Created = BTreeSet<(String, String)>;

/// Every read of the matrix that no seed provides, and every seed that does not parse.
pub fn check(ctx: &Context, repo: &Repo, matrix: &ServiceMatrix, file: &str) -> Vec<String> {
    let umbrellas: Vec<&Chart> = repo.charts.iter().filter(|c| c.kind == ChartKind::Umbrella).collect();
    let mut problems = Vec::new();
    // What each umbrella's seed of each store creates, parsed once.
    let mut seeds: BTreeMap<(String, String), Result<Option<Created>, String>> = BTreeMap::new();
    for service in &matrix.services {
        for (store, databases) in reads(service.other.get("reads")) {
            if !service.dependencies.contains(&store) {
                problems.push(format!(
                    "{}: {file} says it reads {store}, which is not among its dependencies [{}]",
                    service.name,
                    service.dependencies.join(", ")
                ));
                continue;
            }
            for umbrella in &umbrellas {
                let seed = seeds
                    .entry((umbrella.rel.clone(), store.clone()))
                    .or_insert_with(|| seed_of(&ctx.root, umbrella, &store));
                let created = match seed {
                    Err(message) => {
                        problems.push(format!("{}: {message}", service.name));
                        continue;
                    }
                    Ok(None) => {
                        let wanted = databases.keys().cloned().collect::<Vec<_>>().join(", ");
                        problems.push(format!(
                            "{}: {file} says it reads {store} database {wanted}, but {}/values.yaml seeds no {store}: set {store}.initdbScriptsConfigMap and add the scripts under {}/seed/{store}/",
                            service.name, umbrella.rel, umbrella.rel
                        ));
                        continue;
                    }
                    Ok(Some(created)) => created,
                };
                for (database, names) in &databases {
                    for name in names {
                        if !created.contains(&(database.clone(), name.clone())) {
                            problems.push(format!(
                                "{}: {file} says it reads {store} {database}.{name}, but no script of {}/seed/{store}/ creates {database}.{name}",
                                service.name, umbrella.rel
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

/// The matrix's `reads`: store -> database -> names.
fn reads(value: Option<&Value>) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    let Some(Value::Mapping(stores)) = value else { return out };
    for (store, databases) in stores {
        let (Some(store), Value::Mapping(databases)) = (scalar_text(store), databases) else { continue };
        let entry: &mut BTreeMap<String, Vec<String>> = out.entry(store).or_default();
        for (database, names) in databases {
            let Some(database) = scalar_text(database) else { continue };
            let names = names.as_sequence().map(|s| s.iter().filter_map(scalar_text).collect()).unwrap_or_default();
            entry.insert(database, names);
        }
    }
    out
}

/// What the umbrella's seed of a store creates; `Ok(None)` when its values
/// wire no seed into the store.
fn seed_of(root: &Path, umbrella: &Chart, store: &str) -> Result<Option<Created>, String> {
    let shown = format!("{}/values.yaml", umbrella.rel);
    let values: Value =
        crate::util::yaml::load(&umbrella.dir.join("values.yaml"), &shown).map_err(|e| format!("{e:#}"))?;
    let section = values.get(store);
    let wired = ["initdbScriptsConfigMap", "initdbScripts"].iter().any(|key| {
        section.and_then(|s| s.get(*key)).is_some_and(|v| !v.is_null() && scalar_text(v).as_deref() != Some(""))
    });
    if !wired {
        return Ok(None);
    }
    let folder = umbrella.dir.join("seed").join(store);
    crate::util::fs::inside(root, &folder).map_err(|e| format!("{e:#}"))?;
    let mut entries: Vec<_> = std::fs::read_dir(&folder)
        .map_err(|e| format!("{}/seed/{store}: {e}", umbrella.rel))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut created = Created::new();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let shown = format!("{}/seed/{store}/{name}", umbrella.rel);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{shown}: {e}"))?;
        if name.ends_with(".sql") {
            created.extend(sql_creates(&text).map_err(|e| format!("{shown}: {e}"))?);
        } else if name.ends_with(".js") {
            created.extend(js_creates(&text).map_err(|e| format!("{shown}: {e}"))?);
        }
    }
    Ok(Some(created))
}

/// The statements of a MySQL script, split by sqlparser's tokenizer at each
/// `;` (quotes and comments respected), as slices of the original text
/// (a token printed back loses its quoting), without empty ones.
pub fn sql_statements(text: &str) -> Result<Vec<String>, String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::MySqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| format!("does not tokenize as MySQL: {e}"))?;
    // Byte offset of each line's start, for the tokenizer's (line, column in characters).
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(at, _)| at + 1)).collect();
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts.get(line.saturating_sub(1) as usize).copied().unwrap_or(text.len());
        let rest = &text[start..];
        start + rest.char_indices().nth(column.saturating_sub(1) as usize).map_or(rest.len(), |(at, _)| at)
    };
    let mut statements = Vec::new();
    let mut from = 0;
    let mut words = 0;
    for token in &tokens {
        match &token.token {
            Token::SemiColon => {
                let at = offset(token.span.start.line, token.span.start.column);
                if words > 0 {
                    statements.push(text[from..at].to_string());
                }
                from = at + 1;
                words = 0;
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => words += 1,
        }
    }
    if words > 0 {
        statements.push(text[from..].to_string());
    }
    Ok(statements)
}

/// Whether a statement manages accounts (`CREATE USER`, `ALTER USER`, `DROP USER`): MySQL
/// syntax (`'name'@'host' IDENTIFIED BY ...`) that sqlparser does not implement. The tests
/// run those statements on a MySQL-compatible server instead.
pub fn is_account_statement(statement: &str) -> bool {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::MySqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, statement).tokenize() else { return false };
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(word) => Some(word.value.to_ascii_uppercase()),
            _ => None,
        })
        .take(2)
        .collect();
    matches!(words.as_slice(), [verb, user] if user == "USER" && ["CREATE", "ALTER", "DROP"].contains(&verb.as_str()))
}

/// The tables a MySQL script creates, with the database each is in.
pub fn sql_creates(text: &str) -> Result<Created, String> {
    use sqlparser::ast::Statement;
    let mut statements = Vec::new();
    for text in sql_statements(text)?.iter().filter(|s| !is_account_statement(s)) {
        statements.extend(
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, text)
                .map_err(|e| format!("does not parse as MySQL: {e}: {}", text.trim()))?,
        );
    }
    let mut current: Option<String> = None;
    let mut databases = BTreeSet::new();
    let mut created = Created::new();
    for statement in statements {
        match statement {
            Statement::CreateDatabase { db_name, .. } => {
                databases.insert(db_name.to_string());
            }
            Statement::Use(use_) => {
                current = Some(use_.to_string().trim_start_matches("USE ").trim().to_string());
            }
            Statement::CreateTable(table) => {
                let parts: Vec<String> =
                    table.name.0.iter().map(|p| p.to_string().trim_matches('`').to_string()).collect();
                let (database, name) = match parts.as_slice() {
                    [database, name] => (database.clone(), name.clone()),
                    [name] => match &current {
                        Some(database) => (database.clone(), name.clone()),
                        None => {
                            return Err(format!("CREATE TABLE {name} names no database and no USE comes before it"))
                        }
                    },
                    _ => return Err(format!("CREATE TABLE {}: not database.table", table.name)),
                };
                created.insert((database, name));
            }
            _ => {}
        }
    }
    Ok(created)
}

/// The collections a mongosh script creates or writes, with their database.
pub fn js_creates(text: &str) -> Result<Created, String> {
    use oxc_ast::ast::{AssignmentTarget, BindingPatternKind, Expression, Statement};
    let allocator = oxc_allocator::Allocator::default();
    let parsed = oxc_parser::Parser::new(&allocator, text, oxc_span::SourceType::cjs()).parse();
    if let Some(error) = parsed.errors.first() {
        return Err(format!("does not parse as JavaScript: {error}"));
    }
    // Names bound to a database: `db` itself is the shell's default database.
    let mut bound: BTreeMap<String, String> = BTreeMap::new();
    let mut created = Created::new();
    for statement in &parsed.program.body {
        match statement {
            Statement::VariableDeclaration(declaration) => {
                for declarator in &declaration.declarations {
                    if let (BindingPatternKind::BindingIdentifier(id), Some(init)) =
                        (&declarator.id.kind, &declarator.init)
                    {
                        if let Some(database) = sibling_db(init) {
                            bound.insert(id.name.to_string(), database);
                        }
                    }
                }
            }
            Statement::ExpressionStatement(statement) => match &statement.expression {
                Expression::AssignmentExpression(assignment) => {
                    if let (AssignmentTarget::AssignmentTargetIdentifier(id), Some(database)) =
                        (&assignment.left, sibling_db(&assignment.right))
                    {
                        bound.insert(id.name.to_string(), database);
                    }
                }
                Expression::CallExpression(call) => {
                    if let Some(pair) = collection_of_call(call, &bound) {
                        created.insert(pair);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(created)
}

/// `<anything>.getSiblingDB("name")`: the name (mongosh's way to reach another database).
fn sibling_db(expression: &oxc_ast::ast::Expression<'_>) -> Option<String> {
    use oxc_ast::ast::Expression;
    let Expression::CallExpression(call) = expression else { return None };
    let Expression::StaticMemberExpression(member) = &call.callee else { return None };
    if member.property.name != "getSiblingDB" {
        return None;
    }
    string_argument(call, 0)
}

/// The (database, collection) a call works on: `x.createCollection("c")`,
/// `x.c.method(...)` or `x.getCollection("c").method(...)` where `x` is bound
/// to a database.
fn collection_of_call(
    call: &oxc_ast::ast::CallExpression<'_>,
    bound: &BTreeMap<String, String>,
) -> Option<(String, String)> {
    use oxc_ast::ast::Expression;
    let Expression::StaticMemberExpression(method) = &call.callee else { return None };
    let database_of = |expression: &Expression<'_>| match expression {
        Expression::Identifier(id) => bound.get(id.name.as_str()).cloned(),
        _ => None,
    };
    if method.property.name == "createCollection" {
        return Some((database_of(&method.object)?, string_argument(call, 0)?));
    }
    match &method.object {
        Expression::StaticMemberExpression(collection) => {
            Some((database_of(&collection.object)?, collection.property.name.to_string()))
        }
        Expression::CallExpression(inner) => {
            let Expression::StaticMemberExpression(get) = &inner.callee else { return None };
            (get.property.name == "getCollection").then_some(())?;
            Some((database_of(&get.object)?, string_argument(inner, 0)?))
        }
        _ => None,
    }
}

fn string_argument(call: &oxc_ast::ast::CallExpression<'_>, index: usize) -> Option<String> {
    match call.arguments.get(index)? {
        oxc_ast::ast::Argument::StringLiteral(literal) => Some(literal.value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{js_creates, sql_creates};

    fn pairs(list: &[(&str, &str)]) -> super::Created {
        list.iter().map(|(d, t)| (d.to_string(), t.to_string())).collect()
    }

    #[test]
    fn sql_tables_are_found_qualified_or_after_use() {
        let text = "CREATE DATABASE IF NOT EXISTS cities;\nCREATE TABLE cities.codes (uuid BIGINT);\nUSE ratings;\nCREATE TABLE ratings (sku VARCHAR(80));\nINSERT INTO cities.codes (uuid) VALUES (1);";
        assert_eq!(sql_creates(text).unwrap(), pairs(&[("cities", "codes"), ("ratings", "ratings")]));
        assert!(sql_creates("CREATE TABLE t (a INT);").unwrap_err().contains("no database"));
        let logins = "-- a; comment\nCREATE USER IF NOT EXISTS 'a'@'%' IDENTIFIED BY 'p;q''s';\nGRANT SELECT ON cities.* TO 'a'@'%';";
        let split = super::sql_statements(logins).unwrap();
        assert_eq!(split.len(), 2);
        assert!(split[0].ends_with("IDENTIFIED BY 'p;q''s'"), "{split:?}");
        assert!(super::is_account_statement(&super::sql_statements(logins).unwrap()[0]));
        assert!(sql_creates(logins).unwrap().is_empty());
        assert!(sql_creates("CREATE TABLE (").unwrap_err().contains("does not parse"));
    }

    #[test]
    fn js_collections_are_found_through_bound_databases() {
        let text = r#"
            const shop = db.getSiblingDB("catalogue");
            shop.createCollection("products");
            shop.products.createIndex({ sku: 1 }, { unique: true });
            db = db.getSiblingDB("users");
            db.getCollection("orders").insertOne({ name: "x" });
            other.things.insertOne({});
        "#;
        assert_eq!(js_creates(text).unwrap(), pairs(&[("catalogue", "products"), ("users", "orders")]));
        assert!(js_creates("const = ;").unwrap_err().contains("does not parse"));
    }
}
