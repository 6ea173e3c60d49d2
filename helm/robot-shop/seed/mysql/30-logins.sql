-- The logins the shipping and ratings images have built in: shipping connects as
-- shipping / secret (its JpaConfig), ratings as ratings / iloveit (its Kernel). Neither image
-- reads a password from its environment, so these cannot be changed here without rebuilding
-- the images; the README lists them as a known limitation. What limits them instead:
-- each login may only do what its service does, and the NetworkPolicies admit only shipping
-- and ratings to MySQL's port.
--
-- The Bitnami MySQL image runs this file with the mysql client as root, once, after
-- 10-cities.sql and 20-ratings.sql (the files run in name order).

CREATE USER IF NOT EXISTS 'shipping'@'%' IDENTIFIED BY 'secret';
GRANT SELECT ON cities.* TO 'shipping'@'%';

CREATE USER IF NOT EXISTS 'ratings'@'%' IDENTIFIED BY 'iloveit';
GRANT SELECT, INSERT, UPDATE ON ratings.ratings TO 'ratings'@'%';
