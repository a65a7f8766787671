//! One way to speak SQL to either backend. Repositories write each statement once, in the
//! dialect both databases accept (`?1` placeholders, `ON CONFLICT … DO UPDATE`,
//! `RETURNING`, `COALESCE`), and run it through a [`Conn`]: an embedded SQLite connection or
//! a PostgreSQL client. Where the dialects part (a handful of statements), the repository
//! asks [`Conn::backend`] and writes both.
//!
//! The API follows rusqlite's (`prepare_cached`, `query_row`, `query_map`, `execute`,
//! `optional`), so a statement reads the same whichever database runs it. Values cross in
//! SQLite's five storage classes ([`ValueRef`]); on PostgreSQL they are converted to the type
//! the server inferred for each parameter (an integer bound where `BIGINT`, `INTEGER`,
//! `DOUBLE PRECISION` or `TEXT` is expected works), and every column type Lookout's schema
//! uses is read back as the matching class (`NUMERIC` from `SUM` and `AVG` as a real, or an
//! integer when it has no fraction; booleans as 0 or 1).

use super::{Result, StoreError};
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use std::cell::RefCell;
use std::collections::HashMap;

/// Which database a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file in the data directory.
    Sqlite,
    /// A PostgreSQL server (`database_url`).
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, as `/health` and `/metrics` say it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A borrowed value in one of SQLite's storage classes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned value, for parameter lists built at run time ([`params_from_iter`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Something that binds as a statement parameter.
pub(crate) trait ToValue {
    /// The value, borrowed where it can be.
    fn to_value(&self) -> ValueRef<'_>;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> ValueRef<'_> {
                // Lookout's integers (ids, counts, milliseconds) fit in i64; a u64 beyond it
                // saturates rather than wrapping into a negative.
                ValueRef::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Integer(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Real(*self)
    }
}

impl ToValue for f32 {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Real(f64::from(*self))
    }
}

impl ToValue for str {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToValue for String {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_value(),
            None => ValueRef::Null,
        }
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> ValueRef<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue + ?Sized> ToValue for Box<T> {
    fn to_value(&self) -> ValueRef<'_> {
        (**self).to_value()
    }
}

impl ToValue for std::borrow::Cow<'_, str> {
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

/// A statement's parameters: an array of values, a `params!` list or [`params_from_iter`].
pub(crate) trait Params {
    /// The values in placeholder order.
    fn values(&self) -> Vec<ValueRef<'_>>;
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        Vec::new()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Vec<ValueRef<'_>> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
        impl<T: ToValue> Params for &[T; $n] {
            fn values(&self) -> Vec<ValueRef<'_>> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);

/// Parameters from an iterator of values.
pub(crate) struct ParamsFromIter<T>(Vec<T>);

impl<T: ToValue> Params for ParamsFromIter<T> {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.0.iter().map(ToValue::to_value).collect()
    }
}

/// Bind every value `iter` yields, in order.
pub(crate) fn params_from_iter<T: ToValue>(iter: impl IntoIterator<Item = T>) -> ParamsFromIter<T> {
    ParamsFromIter(iter.into_iter().collect())
}

/// A heterogeneous parameter list: `params![id, name, None::<i64>]`.
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::sql::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::sql::ToValue),+] as &[&dyn $crate::store::sql::ToValue] };
}
pub(crate) use params;

/// A type a column reads into.
pub(crate) trait FromValue: Sized {
    /// Convert, or say why not.
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(i) => Ok(i),
            // SQLite hands back integral reals from expressions like `SUM(x) * 1.0`; so does
            // PostgreSQL's NUMERIC.
            ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
            other => Err(format!("expected an integer, found {}", class(other))),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_int!(i32, u32, u64, usize, u16, u8);

impl FromValue for bool {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {}", class(other))),
        }
    }
}

impl FromValue for String {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            other => Err(format!("expected text, found {}", class(other))),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            ValueRef::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {}", class(other))),
        }
    }
}

impl FromValue for Value {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

fn class(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "bytes",
    }
}

/// One row of a result.
pub(crate) enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` (0-based), converted to `T`. The first type parameter mirrors rusqlite's
    /// index type, so `r.get::<_, i64>(0)` reads the same.
    pub(crate) fn get<I: RowIndex, T: FromValue>(&self, i: I) -> Result<T> {
        let i = i.index();
        let converted = match self {
            Row::Lite(r) => T::from_value(lite_ref(r.get_ref(i)?)),
            Row::Pg(r) => {
                let v: PgValue = r.try_get(i)?;
                T::from_value(v.as_ref())
            }
        };
        converted.map_err(|why| StoreError::Column { index: i, why })
    }
}

/// A column position (0-based). Only `usize`, so a literal index needs no annotation.
pub(crate) trait RowIndex {
    /// The position.
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

fn lite_ref(v: rusqlite::types::ValueRef<'_>) -> ValueRef<'_> {
    use rusqlite::types::ValueRef as L;
    match v {
        L::Null => ValueRef::Null,
        L::Integer(i) => ValueRef::Integer(i),
        L::Real(f) => ValueRef::Real(f),
        // Text SQLite stored is UTF-8 when Lookout wrote it; anything else reads as bytes.
        L::Text(t) => std::str::from_utf8(t).map_or(ValueRef::Blob(t), ValueRef::Text),
        L::Blob(b) => ValueRef::Blob(b),
    }
}

struct Lite<'a>(ValueRef<'a>);

impl rusqlite::ToSql for Lite<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as L};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => L::Null,
            ValueRef::Integer(i) => L::Integer(i),
            ValueRef::Real(f) => L::Real(f),
            ValueRef::Text(s) => L::Text(s.as_bytes()),
            ValueRef::Blob(b) => L::Blob(b),
        }))
    }
}

/// A value bound on PostgreSQL, converted to whatever type the server inferred for its
/// placeholder.
#[derive(Debug)]
struct Pg<'a>(ValueRef<'a>);

impl ToSql for Pg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {} as {ty}", class(self.0)).into()
        };
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i).map_err(|_| mismatch())?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i).map_err(|_| mismatch())?.to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::FLOAT4 => (i as f32).to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    i.to_string().as_str().to_sql(&Type::TEXT, out)
                }
                _ => Err(mismatch()),
            },
            ValueRef::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (f as f32).to_sql(ty, out),
                Type::INT8 if f.fract() == 0.0 => (f as i64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    f.to_string().as_str().to_sql(&Type::TEXT, out)
                }
                _ => Err(mismatch()),
            },
            ValueRef::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>().map_err(|_| mismatch())?.to_sql(ty, out),
                Type::FLOAT8 => s.parse::<f64>().map_err(|_| mismatch())?.to_sql(ty, out),
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                Type::JSON => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSONB => {
                    // Binary JSONB is a version byte, then the text.
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ => s.to_sql(&Type::TEXT, out),
            },
            ValueRef::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => std::str::from_utf8(b)
                    .map_err(|_| mismatch())?
                    .to_sql(&Type::TEXT, out),
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read from PostgreSQL, held in SQLite's storage classes.
enum PgValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl PgValue {
    fn as_ref(&self) -> ValueRef<'_> {
        match self {
            PgValue::Null => ValueRef::Null,
            PgValue::Integer(i) => ValueRef::Integer(*i),
            PgValue::Real(f) => ValueRef::Real(*f),
            PgValue::Text(s) => ValueRef::Text(s),
            PgValue::Blob(b) => ValueRef::Blob(b),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => PgValue::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => PgValue::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => PgValue::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => PgValue::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => PgValue::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => PgValue::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => PgValue::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => PgValue::Blob(raw.to_vec()),
            Type::JSONB => {
                // Binary JSONB is a version byte, then the text.
                let text = raw.get(1..).ok_or("empty jsonb")?;
                PgValue::Text(std::str::from_utf8(text)?.to_owned())
            }
            _ => PgValue::Text(<&str>::from_sql(&Type::TEXT, raw)?.to_owned()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(PgValue::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC (what `SUM` of a `BIGINT` and `AVG` return): a count of
/// base-10000 digits, the weight of the first, a sign and the display scale. Integral values
/// within i64 read as integers, the rest as doubles.
fn numeric(raw: &[u8]) -> std::result::Result<PgValue, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("truncated numeric")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "bad numeric")?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    if sign == 0xC000 {
        return Ok(PgValue::Real(f64::NAN));
    }
    let mut int: i128 = 0;
    let mut real = 0f64;
    let mut integral = true;
    for d in 0..ndigits {
        let digit = i32::from(word(4 + d)?);
        let power = weight - d as i32;
        real += f64::from(digit) * 10000f64.powi(power);
        if power >= 0 {
            int = int.saturating_mul(10000).saturating_add(i128::from(digit));
        } else if digit != 0 {
            integral = false;
        }
    }
    if integral && ndigits > 0 {
        // Trailing base-10000 zeros are not stored: scale up to the units position.
        let last_power = weight - (ndigits as i32 - 1);
        for _ in 0..last_power.max(0) {
            int = int.saturating_mul(10000);
        }
    }
    let negative = sign == 0x4000;
    if integral {
        let v = if negative { -int } else { int };
        if let Ok(i) = i64::try_from(v) {
            return Ok(PgValue::Integer(i));
        }
    }
    Ok(PgValue::Real(if negative { -real } else { real }))
}

/// A PostgreSQL connection with its cache of prepared statements.
///
/// Each statement is prepared with its parameters' types declared from the values bound
/// (`BIGINT` for integers, `DOUBLE PRECISION`, `TEXT`, `BYTEA`), so that a placeholder the
/// server cannot type by itself (`?1 IS NULL OR col = ?1`) still prepares, and the cache is
/// keyed by SQL and those types. A `NULL` takes the type the same placeholder had when the
/// statement last prepared with a value there; failing that, the types that make the
/// statement prepare, tried in turn.
pub(crate) struct PgConn {
    /// `None` only while being dropped.
    client: RefCell<Option<postgres::Client>>,
    /// Statements by their SQL as written: the parameter types it last prepared with, and
    /// each prepared variant by its parameters' type oids.
    prepared: RefCell<HashMap<String, Prepared>>,
    /// Whether a transaction is open (a failed prepare inside one must be rolled back to a
    /// savepoint, or the transaction is lost).
    in_tx: std::cell::Cell<bool>,
}

/// The prepared forms of one SQL text.
struct Prepared {
    /// The parameter types it last prepared with (what a `NULL` there is bound as).
    known: Vec<Type>,
    /// Each prepared statement, by its parameters' type oids.
    variants: Vec<(Vec<u32>, postgres::Statement)>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn").finish_non_exhaustive()
    }
}

impl PgConn {
    pub(crate) fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client: RefCell::new(Some(client)),
            prepared: RefCell::new(HashMap::new()),
            in_tx: std::cell::Cell::new(false),
        }
    }

    /// The prepared statement for `sql` with `values` bound.
    fn statement(&self, sql: &str, values: &[ValueRef<'_>]) -> Result<postgres::Statement> {
        let type_of = |known: &[Type], i: usize, v: &ValueRef<'_>| match v {
            ValueRef::Integer(_) => Type::INT8,
            ValueRef::Real(_) => Type::FLOAT8,
            ValueRef::Text(_) => Type::TEXT,
            ValueRef::Blob(_) => Type::BYTEA,
            ValueRef::Null => known.get(i).cloned().unwrap_or_else(unspecified),
        };
        // The hot path: a statement already prepared for these types, found without
        // allocating.
        if let Some(p) = self.prepared.borrow().get(sql) {
            let found = p.variants.iter().find(|(oids, _)| {
                oids.len() == values.len()
                    && values
                        .iter()
                        .enumerate()
                        .all(|(i, v)| type_of(&p.known, i, v).oid() == oids[i])
            });
            if let Some((_, s)) = found {
                return Ok(s.clone());
            }
        }
        let known = self
            .prepared
            .borrow()
            .get(sql)
            .map(|p| p.known.clone())
            .unwrap_or_default();
        let mut types: Vec<Type> = values
            .iter()
            .enumerate()
            .map(|(i, v)| type_of(&known, i, v))
            .collect();
        let text = pg_placeholders(&without_index_hints(sql));
        let open: Vec<usize> = (0..types.len()).filter(|&i| types[i].oid() == 0).collect();
        // With no type to go by, let the server infer; if it cannot, try the types Lookout's
        // schema uses, in turn.
        // Only a statement with untyped NULLs may fail to prepare and be tried again; inside
        // a transaction each try runs under a savepoint, so a failure costs only the try.
        let guarded = !open.is_empty() && self.in_tx.get();
        let prepare = |types: &[Type]| {
            let mut client = self.client();
            let client = &mut *client;
            off_runtime(|| {
                if guarded {
                    client.batch_execute("SAVEPOINT lookout_prepare")?;
                }
                let result = client.prepare_typed(&text, types);
                if guarded {
                    client.batch_execute(if result.is_ok() {
                        "RELEASE SAVEPOINT lookout_prepare"
                    } else {
                        "ROLLBACK TO SAVEPOINT lookout_prepare"
                    })?;
                }
                result
            })
        };
        let mut result = prepare(&types);
        for fallback in [Type::TEXT, Type::INT8, Type::FLOAT8, Type::BYTEA] {
            if result.is_ok() || open.is_empty() {
                break;
            }
            for &i in &open {
                types[i] = fallback.clone();
            }
            result = prepare(&types);
        }
        let stmt = result?;
        let mut prepared = self.prepared.borrow_mut();
        let entry = prepared.entry(sql.to_owned()).or_insert_with(|| Prepared {
            known: Vec::new(),
            variants: Vec::new(),
        });
        entry.known = stmt.params().to_vec();
        entry
            .variants
            .push((types.iter().map(Type::oid).collect(), stmt.clone()));
        Ok(stmt)
    }

    fn execute(&self, sql: &str, values: &[ValueRef<'_>]) -> Result<usize> {
        let stmt = self.statement(sql, values)?;
        let bound: Vec<Pg<'_>> = values.iter().map(|v| Pg(*v)).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|v| v as _).collect();
        let mut client = self.client();
        let client = &mut *client;
        let n = off_runtime(|| client.execute(&stmt, &refs))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn query(&self, sql: &str, values: &[ValueRef<'_>]) -> Result<Vec<postgres::Row>> {
        let stmt = self.statement(sql, values)?;
        let bound: Vec<Pg<'_>> = values.iter().map(|v| Pg(*v)).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|v| v as _).collect();
        let mut client = self.client();
        let client = &mut *client;
        Ok(off_runtime(|| client.query(&stmt, &refs))?)
    }

    /// The client itself, for what only PostgreSQL has (COPY, arrays, advisory locks).
    pub(crate) fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut()
                .unwrap_or_else(|| unreachable!("the client is only taken by drop"))
        })
    }

    /// Whether the connection has been closed (the server went away).
    pub(crate) fn is_closed(&self) -> bool {
        self.client
            .borrow()
            .as_ref()
            .is_none_or(postgres::Client::is_closed)
    }
}

/// Run `f`, which blocks on the PostgreSQL client, where blocking is allowed: directly on a
/// plain or blocking-pool thread, or on a short-lived thread of its own when called from an
/// async task (the client drives its own small runtime, which cannot start inside another).
/// The store is meant to be called from blocking threads; this keeps a stray call from an
/// async context correct rather than a panic.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A parameter type left for the server to infer (oid 0 in the protocol).
fn unspecified() -> Type {
    Type::new(
        "unspecified".into(),
        0,
        postgres::types::Kind::Pseudo,
        "pg_catalog".into(),
    )
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Closing blocks on the client's runtime, which cannot run inside an async task.
        if let Some(client) = self.client.get_mut().take() {
            off_runtime(move || drop(client));
        }
    }
}

/// `sql` without SQLite's `INDEXED BY <index>` hints, which PostgreSQL does not have (its
/// planner is left to choose).
fn without_index_hints(sql: &str) -> std::borrow::Cow<'_, str> {
    const HINT: &str = " INDEXED BY ";
    if !sql.contains(HINT) {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(HINT) {
        out.push_str(&rest[..at]);
        let after = &rest[at + HINT.len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[name_len..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Rewrite SQLite's `?N` and `?` placeholders into PostgreSQL's `$N`, leaving string
/// literals, quoted identifiers and comments alone. As in SQLite, a bare `?` takes the
/// number after the largest one used so far.
pub(crate) fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut largest = 0usize;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    largest + 1
                } else {
                    digits.parse().unwrap_or(usize::MAX)
                };
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// A connection to either backend.
#[derive(Debug)]
pub(crate) enum Conn {
    Lite(rusqlite::Connection),
    Pg(Box<PgConn>),
}

/// A prepared statement of a [`Conn`].
pub(crate) enum Stmt<'c> {
    LiteCached(rusqlite::CachedStatement<'c>),
    Lite(rusqlite::Statement<'c>),
    Pg(&'c PgConn, String),
}

impl Conn {
    /// Which database this is.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Conn::Lite(_) => Backend::Sqlite,
            Conn::Pg(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL connection, for what only PostgreSQL has.
    pub(crate) fn postgres(&self) -> Option<&PgConn> {
        match self {
            Conn::Lite(_) => None,
            Conn::Pg(c) => Some(c),
        }
    }

    /// Prepare `sql`, reusing the connection's cached statement when it has one.
    pub(crate) fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self {
            Conn::Lite(c) => Stmt::LiteCached(c.prepare_cached(sql)?),
            Conn::Pg(c) => Stmt::Pg(c, sql.to_owned()),
        })
    }

    /// Prepare `sql` once (statements built at run time, which would only fill the cache).
    pub(crate) fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self {
            Conn::Lite(c) => Stmt::Lite(c.prepare(sql)?),
            Conn::Pg(c) => Stmt::Pg(c, sql.to_owned()),
        })
    }

    /// Run one statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of `sql`, mapped by `f`; [`StoreError::NoRows`] when there is none.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Run statements separated by `;`, with no parameters (schema, `BEGIN`).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Lite(c) => c.execute_batch(sql)?,
            Conn::Pg(c) => {
                let mut client = c.client();
                let client = &mut *client;
                off_runtime(|| client.batch_execute(sql))?;
            }
        }
        Ok(())
    }

    /// A transaction ended (committed or rolled back).
    fn ended(&self) {
        if let Conn::Pg(c) = self {
            c.in_tx.set(false);
        }
    }

    /// Run `f` in one transaction that takes the write lock up front (`BEGIN IMMEDIATE` on
    /// SQLite); commit when it returns `Ok`, roll back when it fails or panics.
    pub(crate) fn transaction<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let tx = self.begin()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Open a transaction (taking SQLite's write lock up front); it rolls back when dropped
    /// unless [`Tx::commit`] was called.
    pub(crate) fn begin(&self) -> Result<Tx<'_>> {
        self.execute_batch(match self {
            Conn::Lite(_) => "BEGIN IMMEDIATE",
            Conn::Pg(_) => "BEGIN",
        })?;
        if let Conn::Pg(c) = self {
            c.in_tx.set(true);
        }
        Ok(Tx {
            conn: self,
            open: true,
        })
    }
}

/// An open transaction; dereferences to its connection.
pub(crate) struct Tx<'a> {
    conn: &'a Conn,
    open: bool,
}

impl Tx<'_> {
    /// Commit.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.open = false;
        let done = self.conn.execute_batch("COMMIT");
        self.conn.ended();
        done
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a failed transaction failed");
            }
            self.conn.ended();
        }
    }
}

impl<'c> Stmt<'c> {
    fn lite(&mut self) -> Option<&mut rusqlite::Statement<'c>> {
        match self {
            Stmt::LiteCached(s) => Some(s),
            Stmt::Lite(s) => Some(s),
            Stmt::Pg(..) => None,
        }
    }

    /// Run the statement; the number of rows it changed.
    pub(crate) fn execute(&mut self, params: impl Params) -> Result<usize> {
        let values = params.values();
        if let Some(s) = self.lite() {
            return Ok(s.execute(rusqlite::params_from_iter(values.iter().map(|v| Lite(*v))))?);
        }
        match self {
            Stmt::Pg(c, s) => c.execute(s, &values),
            _ => unreachable!("handled above"),
        }
    }

    /// Every row, mapped by `f`. The rows are read before this returns; the iterator yields
    /// `Ok` values (a failure ends the call instead).
    pub(crate) fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let values = params.values();
        let mut out = Vec::new();
        if let Some(s) = self.lite() {
            let mut rows = s.query(rusqlite::params_from_iter(values.iter().map(|v| Lite(*v))))?;
            while let Some(r) = rows.next()? {
                out.push(Ok(f(&Row::Lite(r))?));
            }
            return Ok(out.into_iter());
        }
        if let Stmt::Pg(c, s) = self {
            for r in c.query(s, &values)? {
                out.push(Ok(f(&Row::Pg(&r))?));
            }
        }
        Ok(out.into_iter())
    }

    /// Run `f` on every row, in order, without collecting them.
    pub(crate) fn for_each(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let values = params.values();
        if let Some(s) = self.lite() {
            let mut rows = s.query(rusqlite::params_from_iter(values.iter().map(|v| Lite(*v))))?;
            while let Some(r) = rows.next()? {
                f(&Row::Lite(r))?;
            }
            return Ok(());
        }
        if let Stmt::Pg(c, s) = self {
            for r in c.query(s, &values)? {
                f(&Row::Pg(&r))?;
            }
        }
        Ok(())
    }

    /// The first row mapped by `f`; [`StoreError::NoRows`] when there is none.
    pub(crate) fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let values = params.values();
        if let Some(s) = self.lite() {
            let mut rows = s.query(rusqlite::params_from_iter(values.iter().map(|v| Lite(*v))))?;
            return match rows.next()? {
                Some(r) => f(&Row::Lite(r)),
                None => Err(StoreError::NoRows),
            };
        }
        match self {
            Stmt::Pg(c, s) => match c.query(s, &values)?.first() {
                Some(r) => f(&Row::Pg(r)),
                None => Err(StoreError::NoRows),
            },
            _ => unreachable!("handled above"),
        }
    }
}

/// Most rows per multi-row statement on PostgreSQL.
const BULK_ROWS: usize = 256;

/// Rows for one `INSERT … VALUES` statement whose result nobody reads (tags, spans, feed
/// rows). On SQLite each row is written at once by a cached single-row statement (a few
/// microseconds in process); on PostgreSQL, where every statement is a round trip to the
/// server, rows are gathered and written by multi-row statements of 256, 128, … rows (a
/// handful of distinct statements to prepare). [`Bulk::finish`] writes what is left; rows
/// are written in the order pushed.
pub(crate) struct Bulk<'c> {
    conn: &'c Conn,
    head: &'static str,
    tail: &'static str,
    width: usize,
    /// The single-row statement (SQLite), prepared once.
    single: Option<Stmt<'c>>,
    /// Rows waiting (PostgreSQL), `width` values each.
    pending: Vec<Value>,
}

impl<'c> Bulk<'c> {
    /// Rows of `width` values for `head` (`INSERT INTO t (a, b) VALUES`) followed by `tail`
    /// (`ON CONFLICT DO NOTHING`, or empty).
    pub(crate) fn new(
        conn: &'c Conn,
        head: &'static str,
        width: usize,
        tail: &'static str,
    ) -> Result<Self> {
        let single = match conn {
            Conn::Lite(_) => Some(conn.prepare_cached(&rows_sql(head, width, 1, tail))?),
            Conn::Pg(_) => None,
        };
        Ok(Bulk {
            conn,
            head,
            tail,
            width,
            single,
            pending: Vec::new(),
        })
    }

    /// Add one row of `width` values.
    pub(crate) fn push(&mut self, row: &[&dyn ToValue]) -> Result<()> {
        debug_assert_eq!(row.len(), self.width);
        match &mut self.single {
            Some(stmt) => {
                stmt.execute(row)?;
            }
            None => {
                self.pending.extend(row.iter().map(|v| owned(v.to_value())));
                if self.pending.len() >= BULK_ROWS * self.width {
                    self.write(BULK_ROWS)?;
                }
            }
        }
        Ok(())
    }

    /// Write the rows still waiting.
    pub(crate) fn finish(mut self) -> Result<()> {
        while !self.pending.is_empty() {
            let rows = self.pending.len() / self.width;
            // The largest power of two that fits: few distinct statements to prepare.
            let n = 1usize << (usize::BITS - 1 - rows.min(BULK_ROWS).leading_zeros());
            self.write(n)?;
        }
        Ok(())
    }

    fn write(&mut self, rows: usize) -> Result<()> {
        let values: Vec<Value> = self.pending.drain(..rows * self.width).collect();
        let sql = rows_sql(self.head, self.width, rows, self.tail);
        self.conn.execute(&sql, params_from_iter(values))?;
        Ok(())
    }
}

/// Most rows per multi-row `INSERT … RETURNING` on PostgreSQL.
const RETURNING_ROWS: usize = 128;

/// Insert `n` rows of `width` values, the first two of each the row's unique key (an
/// integer and a text, as `project_id, event_id`), and return each row's new id, or `None`
/// where the key was taken already (stored before, or by an earlier row of the same call).
/// `conflict` names the key (`ON CONFLICT (project_id, event_id) DO NOTHING`), `key` its
/// columns (`project_id, event_id`). On SQLite each row is one cached statement; on
/// PostgreSQL rows go by multi-row statements of 128, 64, … rows, one round trip each.
pub(crate) fn insert_returning_ids<'a>(
    conn: &Conn,
    head: &str,
    width: usize,
    conflict: &str,
    key: &str,
    n: usize,
    row: impl Fn(usize) -> Vec<&'a dyn ToValue>,
) -> Result<Vec<Option<i64>>> {
    if let Conn::Lite(_) = conn {
        let single = rows_sql(head, width, 1, &format!("{conflict} RETURNING id"));
        let mut stmt = conn.prepare_cached(&single)?;
        return (0..n)
            .map(|i| stmt.query_row(&row(i)[..], |r| r.get(0)).optional())
            .collect();
    }
    let mut ids: HashMap<(i64, String), i64> = HashMap::new();
    // Each row's key, read while its values are copied for the statement.
    let mut keys: Vec<Option<(i64, String)>> = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let left = (n - start).min(RETURNING_ROWS);
        let rows = 1usize << (usize::BITS - 1 - left.leading_zeros());
        let sql = rows_sql(
            head,
            width,
            rows,
            &format!("{conflict} RETURNING {key}, id"),
        );
        let mut values: Vec<Value> = Vec::with_capacity(rows * width);
        for i in start..start + rows {
            let row = row(i);
            keys.push(match (row[0].to_value(), row[1].to_value()) {
                (ValueRef::Integer(p), ValueRef::Text(e)) => Some((p, e.to_owned())),
                _ => None,
            });
            values.extend(row.iter().map(|v| owned(v.to_value())));
        }
        conn.prepare_cached(&sql)?
            .for_each(params_from_iter(values), |r| {
                ids.insert((r.get(0)?, r.get(1)?), r.get(2)?);
                Ok(())
            })?;
        start += rows;
    }
    // The first row with a key takes its id; a later one is a duplicate.
    Ok(keys
        .into_iter()
        .map(|k| k.and_then(|k| ids.remove(&k)))
        .collect())
}

/// `head (?1, ?2), (?3, ?4) tail` for `rows` rows of `width` values.
fn rows_sql(head: &str, width: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6);
    sql.push_str(head);
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(r * width + c + 1).to_string());
        }
        sql.push(')');
    }
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(s) => Value::Text(s.to_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// `optional()` on a single-row result: no row is `None` rather than an error.
pub(crate) trait OptionalExtension<T> {
    /// `Ok(None)` for [`StoreError::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_literals() {
        assert_eq!(
            pg_placeholders(
                "SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b IN (?, ?) -- ?3\n AND c = ?12 AND d = ?"
            ),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3) -- ?3\n AND c = $12 AND d = $13"
        );
        assert_eq!(pg_placeholders("a = ? OR b = ?"), "a = $1 OR b = $2");
        assert_eq!(
            without_index_hints("SELECT a FROM events INDEXED BY events_trace\n WHERE x"),
            "SELECT a FROM events\n WHERE x"
        );
    }

    #[test]
    fn bulk_statements_list_rows_of_placeholders() {
        assert_eq!(
            rows_sql(
                "INSERT INTO t (a, b) VALUES",
                2,
                2,
                "ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            rows_sql("INSERT INTO t (a) VALUES", 1, 1, ""),
            "INSERT INTO t (a) VALUES (?1)"
        );
    }

    #[test]
    fn numerics_read_as_integers_or_reals() {
        // 123456789 = digits [1, 2345, 6789], weight 2, positive, scale 0.
        let raw: Vec<u8> = [3i16, 2, 0, 0, 1, 2345, 6789]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!(matches!(numeric(&raw), Ok(PgValue::Integer(123_456_789))));
        // 20000 = digits [2], weight 1: the trailing zero group is not stored.
        let raw: Vec<u8> = [1i16, 1, 0, 0, 2]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!(matches!(numeric(&raw), Ok(PgValue::Integer(20_000))));
        // -1.5 = digits [1, 5000], weight 0, negative, scale 1.
        let raw: Vec<u8> = [2i16, 0, 0x4000, 1, 1, 5000]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!(matches!(numeric(&raw), Ok(PgValue::Real(f)) if (f + 1.5).abs() < 1e-12));
        // Zero has no digits.
        let raw: Vec<u8> = [0i16, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!(matches!(numeric(&raw), Ok(PgValue::Integer(0))));
    }
}
