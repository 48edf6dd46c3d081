//! The feature DDL: `CREATE WINDOWED FEATURE`, `DROP WINDOWED FEATURE`,
//! `SHOW WINDOWED FEATURES`, and the tile statements `BACKFILL WINDOWED
//! FEATURES`, `SHOW WINDOWED AGGREGATIONS`, `VACUUM WINDOWED AGGREGATIONS`.
//!
//! [`TesseraParser`] wraps DataFusion's [`DFParser`]: at the start of each
//! statement it peeks at the tokens, parses Tessera's own statements itself
//! and hands everything else to DataFusion unchanged, so one SQL text can mix
//! both. Expressions inside the DDL (the aggregate call, `WHERE`, `DEFAULT`)
//! are parsed with sqlparser's expression parser and kept as SQL text.

use std::collections::VecDeque;

use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::sql::parser::{DFParser, DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr as SQLExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::Token;
use tessera_time::Instant;

use crate::{
    FeatureDefinition, FeatureDefinitionBuilder, FeatureName, split_bucket_durations,
    split_bucket_starts,
};

/// A statement of Tessera's SQL: feature DDL or anything DataFusion parses.
#[derive(Debug, Clone)]
pub enum TesseraStatement {
    /// `CREATE [OR REPLACE] WINDOWED FEATURE ...`
    CreateFeature {
        /// The parsed, catalog-independent checks already applied.
        definition: Box<FeatureDefinition>,
        /// `OR REPLACE` was given.
        or_replace: bool,
    },
    /// `DROP WINDOWED FEATURE [IF EXISTS] ns.name`
    DropFeature {
        /// The feature to drop.
        name: FeatureName,
        /// `IF EXISTS` was given.
        if_exists: bool,
    },
    /// `SHOW WINDOWED FEATURES`
    ShowFeatures,
    /// `BACKFILL WINDOWED FEATURE[S] ns.a [, ns.b …] FROM '<instant>' TO '<instant>'`:
    /// write the tiles of every complete bucket in `[lower, upper)`.
    Backfill {
        /// The features whose tile sets to write.
        features: Vec<FeatureName>,
        /// The lower bound, inclusive.
        lower: Instant,
        /// The upper bound, exclusive.
        upper: Instant,
    },
    /// `SHOW WINDOWED AGGREGATIONS`: the tile sets of the store, with coverage.
    ShowAggregations,
    /// `VACUUM WINDOWED AGGREGATIONS`: expire tiles by retention, delete unreferenced files.
    VacuumAggregations,
    /// Any other statement, for DataFusion.
    DataFusion(Box<DFStatement>),
}

/// Parses SQL text into [`TesseraStatement`]s.
pub struct TesseraParser<'a> {
    inner: DFParser<'a>,
}

impl<'a> TesseraParser<'a> {
    /// A parser for `sql` in `dialect`.
    pub fn new(sql: &'a str, dialect: &'a dyn Dialect) -> Result<Self> {
        Ok(Self {
            inner: DFParserBuilder::new(sql).with_dialect(dialect).build()?,
        })
    }

    /// Parses every `;`-separated statement.
    pub fn parse_statements(&mut self) -> Result<VecDeque<TesseraStatement>> {
        let mut statements = VecDeque::new();
        loop {
            while self.inner.parser.consume_token(&Token::SemiColon) {}
            if self.inner.parser.peek_token() == Token::EOF {
                return Ok(statements);
            }
            statements.push_back(self.parse_statement()?);
            let next = self.inner.parser.peek_token();
            if next != Token::SemiColon && next != Token::EOF {
                return plan_err!("expected end of statement, found: {next}");
            }
        }
    }

    fn parse_statement(&mut self) -> Result<TesseraStatement> {
        if self.peek_words(&["CREATE", "WINDOWED"])
            || self.peek_words(&["CREATE", "OR", "REPLACE", "WINDOWED"])
        {
            return self.parse_create();
        }
        if self.peek_words(&["DROP", "WINDOWED"]) {
            return self.parse_drop();
        }
        if self.peek_words(&["SHOW", "WINDOWED", "AGGREGATIONS"]) {
            self.expect_words(&["SHOW", "WINDOWED", "AGGREGATIONS"])?;
            return Ok(TesseraStatement::ShowAggregations);
        }
        if self.peek_words(&["SHOW", "WINDOWED"]) {
            self.expect_words(&["SHOW", "WINDOWED", "FEATURES"])?;
            return Ok(TesseraStatement::ShowFeatures);
        }
        if self.peek_words(&["BACKFILL"]) {
            return self.parse_backfill();
        }
        if self.peek_words(&["VACUUM", "WINDOWED"]) {
            self.expect_words(&["VACUUM", "WINDOWED", "AGGREGATIONS"])?;
            return Ok(TesseraStatement::VacuumAggregations);
        }
        Ok(TesseraStatement::DataFusion(Box::new(
            self.inner.parse_statement()?,
        )))
    }

    /// Whether the next tokens are exactly these words (case-insensitive).
    fn peek_words(&self, words: &[&str]) -> bool {
        words.iter().enumerate().all(
            |(i, word)| match &self.inner.parser.peek_nth_token(i).token {
                Token::Word(w) => w.value.eq_ignore_ascii_case(word),
                _ => false,
            },
        )
    }

    fn expect_words(&mut self, words: &[&str]) -> Result<()> {
        for word in words {
            let token = self.inner.parser.next_token();
            match &token.token {
                Token::Word(w) if w.value.eq_ignore_ascii_case(word) => {}
                other => return plan_err!("expected {word}, found: {other}"),
            }
        }
        Ok(())
    }

    fn parse_drop(&mut self) -> Result<TesseraStatement> {
        self.expect_words(&["DROP", "WINDOWED", "FEATURE"])?;
        let parser = &mut self.inner.parser;
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = self.parse_feature_name()?;
        Ok(TesseraStatement::DropFeature { name, if_exists })
    }

    fn parse_backfill(&mut self) -> Result<TesseraStatement> {
        self.expect_words(&["BACKFILL", "WINDOWED"])?;
        if !self.peek_words(&["FEATURES"]) {
            self.expect_words(&["FEATURE"])?;
        } else {
            self.expect_words(&["FEATURES"])?;
        }
        let mut features = vec![self.parse_feature_name()?];
        while self.inner.parser.consume_token(&Token::Comma) {
            features.push(self.parse_feature_name()?);
        }
        self.expect_words(&["FROM"])?;
        let lower = self.parse_instant("FROM")?;
        self.expect_words(&["TO"])?;
        let upper = self.parse_instant("TO")?;
        Ok(TesseraStatement::Backfill {
            features,
            lower,
            upper,
        })
    }

    fn parse_instant(&mut self, clause: &str) -> Result<Instant> {
        let text = self
            .inner
            .parser
            .parse_literal_string()
            .map_err(parse_error)?;
        tessera_time::parse_instant(&text)
            .map_err(|e| DataFusionError::Plan(format!("BACKFILL {clause}: {e}")))
    }

    fn parse_feature_name(&mut self) -> Result<FeatureName> {
        let object = self
            .inner
            .parser
            .parse_object_name(false)
            .map_err(parse_error)?;
        let parts: Vec<String> = object
            .0
            .iter()
            .map(|part| part.to_string().trim_matches('"').to_string())
            .collect();
        match parts.as_slice() {
            [namespace, name] => FeatureName::new(namespace.as_str(), name.as_str()),
            _ => plan_err!(
                "invalid feature name \"{object}\": expected namespace.name, e.g. user.total_transaction_amount"
            ),
        }
    }

    fn parse_create(&mut self) -> Result<TesseraStatement> {
        self.expect_words(&["CREATE"])?;
        let or_replace = self
            .inner
            .parser
            .parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        self.expect_words(&["WINDOWED", "FEATURE"])?;
        let name = self.parse_feature_name()?;
        let mut builder = FeatureDefinition::builder(&name.to_string());
        let mut seen: Vec<String> = Vec::new();
        while let Token::Word(word) = self.inner.parser.peek_token().token {
            let clause = word.value.to_ascii_uppercase();
            if seen.contains(&clause) {
                return plan_err!("feature {name}: clause {clause} given twice");
            }
            builder = match clause.as_str() {
                "FROM" => self.parse_from(builder)?,
                "KEY" => self.parse_key(builder)?,
                "TIMESTAMP" => self.parse_timestamp(builder)?,
                "AGGREGATE" => self.parse_aggregate(builder)?,
                "WINDOWS" => self.parse_windows(builder)?,
                "WHERE" => self.parse_where(builder)?,
                "DEFAULT" => self.parse_default(builder)?,
                "WITH" => self.parse_with(&name, builder)?,
                other => {
                    return plan_err!(
                        "feature {name}: unexpected {other}; expected FROM, KEY, TIMESTAMP, AGGREGATE, WINDOWS, WHERE, DEFAULT or WITH"
                    );
                }
            };
            seen.push(clause);
        }
        let definition = Box::new(builder.build()?);
        Ok(TesseraStatement::CreateFeature {
            definition,
            or_replace,
        })
    }

    fn parse_from(
        &mut self,
        builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let table = self
            .inner
            .parser
            .parse_object_name(false)
            .map_err(parse_error)?;
        Ok(builder.source(&table.to_string()))
    }

    fn parse_key(
        &mut self,
        mut builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let parser = &mut self.inner.parser;
        let columns = if parser.consume_token(&Token::LParen) {
            let columns = parser
                .parse_comma_separated(|p| p.parse_identifier())
                .map_err(parse_error)?;
            parser.expect_token(&Token::RParen).map_err(parse_error)?;
            columns
        } else {
            vec![parser.parse_identifier().map_err(parse_error)?]
        };
        for column in columns {
            builder = builder.key(&column.value);
        }
        Ok(builder)
    }

    fn parse_timestamp(
        &mut self,
        builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let column = self.inner.parser.parse_identifier().map_err(parse_error)?;
        Ok(builder.timestamp(&column.value))
    }

    fn parse_aggregate(
        &mut self,
        builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let expr = self.inner.parser.parse_expr().map_err(parse_error)?;
        let SQLExpr::Function(function) = &expr else {
            return plan_err!(
                "AGGREGATE expects a function call such as sum(amount), found: {expr}"
            );
        };
        let arguments = match &function.args {
            FunctionArguments::None => Vec::new(),
            FunctionArguments::List(list) => list
                .args
                .iter()
                .filter_map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => None,
                    other => Some(other.to_string()),
                })
                .collect(),
            FunctionArguments::Subquery(_) => {
                return plan_err!("AGGREGATE {expr}: subqueries are not supported as arguments");
            }
        };
        Ok(builder.aggregate(&function.name.to_string().to_ascii_lowercase(), arguments))
    }

    fn parse_windows(
        &mut self,
        builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let parser = &mut self.inner.parser;
        parser.expect_token(&Token::LParen).map_err(parse_error)?;
        let windows = parser
            .parse_comma_separated(|p| p.parse_literal_string())
            .map_err(parse_error)?;
        parser.expect_token(&Token::RParen).map_err(parse_error)?;
        Ok(builder.windows(windows))
    }

    fn parse_where(
        &mut self,
        builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let predicate = self.inner.parser.parse_expr().map_err(parse_error)?;
        Ok(builder.filter(&predicate.to_string()))
    }

    fn parse_default(
        &mut self,
        builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        let literal = self.inner.parser.parse_expr().map_err(parse_error)?;
        Ok(builder.default_value(&literal.to_string()))
    }

    fn parse_with(
        &mut self,
        name: &FeatureName,
        mut builder: FeatureDefinitionBuilder,
    ) -> Result<FeatureDefinitionBuilder> {
        self.inner.parser.next_token();
        self.inner
            .parser
            .expect_token(&Token::LParen)
            .map_err(parse_error)?;
        loop {
            let option = self
                .inner
                .parser
                .parse_identifier()
                .map_err(parse_error)?
                .value
                .to_ascii_lowercase();
            self.inner
                .parser
                .expect_token(&Token::Eq)
                .map_err(parse_error)?;
            let value = match self.inner.parser.parse_value().map_err(parse_error)?.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s,
                other => other.to_string(),
            };
            builder = match option.as_str() {
                "bucket_duration" => builder.bucket_duration(&value),
                "bucket_start" => builder.bucket_start(&value),
                "bucket_starts" => split_bucket_starts(&value)?
                    .into_iter()
                    .fold(builder, |b, (bucket, instant)| {
                        b.bucket_start_for(&bucket, &instant)
                    }),
                "bucket_durations" => split_bucket_durations(&value)?
                    .into_iter()
                    .fold(builder, |b, (bucket, windows)| {
                        b.bucket_durations(&bucket, windows)
                    }),
                other => {
                    return plan_err!(
                        "feature {name}: unknown option '{other}' in WITH; expected bucket_duration, bucket_durations, bucket_start or bucket_starts"
                    );
                }
            };
            if !self.inner.parser.consume_token(&Token::Comma) {
                break;
            }
        }
        self.inner
            .parser
            .expect_token(&Token::RParen)
            .map_err(parse_error)?;
        Ok(builder)
    }
}

fn parse_error(error: ParserError) -> DataFusionError {
    DataFusionError::SQL(Box::new(error), None)
}
