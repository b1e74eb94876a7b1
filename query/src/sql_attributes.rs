//! `strata_span_attributes(attributes, 'attr:<type>:<key>', "attr:<type>:<key>", ...)`:
//! the SQL function the `spans` view uses to show span attributes of spans files with
//! dedicated attribute columns (see `strata_storage::span_attrs`) as the JSON text they
//! were ingested as. Each dedicated column comes as its name (a string literal) followed
//! by the column.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use strata_storage::span_attrs::{DedicatedColumn, merge_attributes, parse_column_name};

/// The function's SQL name.
pub const NAME: &str = "strata_span_attributes";

#[derive(Debug, PartialEq, Eq, Hash)]
struct SpanAttributes {
    signature: Signature,
}

/// The function, to register in a session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(SpanAttributes {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

fn bad_args() -> DataFusionError {
    DataFusionError::Plan(format!(
        "{NAME} takes the attributes column, then pairs of a dedicated column's name and the column"
    ))
}

impl ScalarUDFImpl for SpanAttributes {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let n = args.number_rows;
        let mut it = args.args.into_iter();
        let rest = it.next().ok_or_else(bad_args)?.into_array(n)?;
        let mut names = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        while let Some(name) = it.next() {
            let ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))) = name else {
                return Err(bad_args());
            };
            names.push(name);
            columns.push(it.next().ok_or_else(bad_args)?.into_array(n)?);
        }
        let mut dedicated = Vec::with_capacity(names.len());
        for (name, values) in names.iter().zip(&columns) {
            let (_, key) = parse_column_name(name).ok_or_else(bad_args)?;
            dedicated.push(DedicatedColumn { key, values });
        }
        let rest = rest.as_string_opt::<i32>().ok_or_else(bad_args)?;
        if rest.len() != n {
            return Err(bad_args());
        }
        let merged = merge_attributes(rest, &dedicated)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(merged))
    }
}
