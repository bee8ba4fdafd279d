-- How many fines were sent to credit collection each year.
SELECT year, fines FROM credit_collection_by_year ORDER BY year;
