-- Open orders of one customer: audit query open_orders --param customer=c42
SELECT key AS order_id, total FROM order_totals
WHERE status = 'open' AND customer = :customer
ORDER BY key;
