-- Permit cases' backlog at the end of each month: cases received by then whose
-- receipt phase had not yet decided (T10), beside the month's arrivals and decisions.
-- Over the permit_cases projection: audit query permit_backlog_by_month
WITH RECURSIVE months(month) AS (
  SELECT substr(min(received_at), 1, 7) FROM permit_cases
  UNION ALL
  SELECT strftime('%Y-%m', month || '-01', '+1 month') FROM months
  WHERE month < (SELECT substr(max(max(received_at), coalesce(max(decided_at), '')), 1, 7) FROM permit_cases)
),
ends AS (
  -- Times are fixed-width UTC text, so the first instant of the next month compares.
  SELECT month, strftime('%Y-%m-%dT00:00:00.000Z', month || '-01', '+1 month') AS next_month FROM months
)
SELECT month,
       (SELECT count(*) FROM permit_cases WHERE substr(received_at, 1, 7) = month) AS received,
       (SELECT count(*) FROM permit_cases WHERE substr(decided_at, 1, 7) = month) AS decided,
       (SELECT count(*) FROM permit_cases
         WHERE received_at < next_month AND (decided_at IS NULL OR decided_at >= next_month)) AS backlog
FROM ends
ORDER BY month;
