//! PostgreSQL → SQLite query rewriting. Queries are written for PostgreSQL with explicit
//! casts and the `gv_*` helpers of the PostgreSQL schema; in SQLite the stored forms are
//! already plain (TEXT ids, INTEGER µs times), so casts vanish and the helpers are identity.

const DROPPED: &[&str] = &["::uuid", "::jsonb", "::inet", "::text", "::float8", "::numeric", "::bigint", "::boolean"];
const IDENTITY_FUNCTIONS: &[&str] = &["gv_ts(", "gv_us(", "gv_list(", "gv_join(", "host("];

pub fn to_sqlite(pg: &str) -> String {
    let mut q = pg.to_string();
    for cast in DROPPED {
        q = q.replace(cast, "");
    }
    for f in IDENTITY_FUNCTIONS {
        q = q.replace(f, "(");
    }
    q
}

#[cfg(test)]
mod tests {
    use super::to_sqlite;

    #[test]
    fn casts_and_helpers_disappear() {
        assert_eq!(
            to_sqlite("SELECT id::text AS id, gv_us(created_at) AS t FROM x WHERE id = $1::uuid AND t < gv_ts($2)"),
            "SELECT id AS id, (created_at) AS t FROM x WHERE id = $1 AND t < ($2)"
        );
        assert_eq!(to_sqlite("VALUES ($1::jsonb, $2::inet, gv_list($3))"), "VALUES ($1, $2, ($3))");
        assert_eq!(to_sqlite("SELECT host(ip_address), gv_join(events)"), "SELECT (ip_address), (events)");
    }
}
