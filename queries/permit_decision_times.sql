-- Receipt-to-decision time of permit cases, by channel.
SELECT channel,
       count(*) AS cases,
       round(avg(hours_to_decision), 1) AS avg_hours,
       round(max(hours_to_decision), 1) AS max_hours
FROM permit_cases
WHERE decided_at IS NOT NULL
GROUP BY channel
ORDER BY channel;
