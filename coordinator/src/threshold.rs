//! TEMP stub (helper A replaces).
use crate::results::{Figures, ThresholdResult};
pub struct Threshold {
    pub expr: String,
    pub metric: String,
    pub op: String,
    pub limit: f64,
}
#[derive(Debug)]
pub struct ThresholdError(String);
impl std::fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    if parts.len() != 3 {
        return Err(ThresholdError(expr.into()));
    }
    Ok(Threshold {
        expr: expr.into(),
        metric: parts[0].into(),
        op: parts[1].into(),
        limit: parts[2].parse().map_err(|_| ThresholdError(expr.into()))?,
    })
}
impl Threshold {
    pub fn check(&self, f: &Figures, scope: &str) -> ThresholdResult {
        let value = f.get(&self.metric).copied();
        let passed = value.is_some_and(|v| match self.op.as_str() {
            "<" => v < self.limit,
            "<=" => v <= self.limit,
            ">" => v > self.limit,
            ">=" => v >= self.limit,
            "==" => v == self.limit,
            _ => v != self.limit,
        });
        ThresholdResult {
            expr: self.expr.clone(),
            scope: scope.into(),
            metric: self.metric.clone(),
            op: self.op.clone(),
            limit: self.limit,
            value,
            passed,
            detail: format!("{value:?}"),
        }
    }
}
pub fn unparsable(expr: &str, scope: &str, why: &str) -> ThresholdResult {
    ThresholdResult {
        expr: expr.into(),
        scope: scope.into(),
        detail: why.into(),
        ..ThresholdResult::default()
    }
}
