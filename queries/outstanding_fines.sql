-- Fines with money still owed, largest first.
SELECT key AS fine, balance, status, created_at
FROM fine_balances
WHERE balance_cents > 0
ORDER BY balance_cents DESC, key;
