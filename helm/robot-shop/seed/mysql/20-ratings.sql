-- Ratings' data: the database `ratings` and its table `ratings`, which the ratings service
-- reads by sku and updates when a shopper rates a product (RatingsService.php of the
-- Robot-Shop sources).
--
-- The Bitnami MySQL image runs this file with the mysql client as root, once, when the data
-- directory is empty. The first ratings are this repository's own, for products of
-- seed/mongodb/10-catalogue.js; a product without a row shows no rating yet.

CREATE DATABASE IF NOT EXISTS ratings CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;

CREATE TABLE IF NOT EXISTS ratings.ratings (
  sku VARCHAR(80) NOT NULL,
  avg_rating DECIMAL(3, 2) NOT NULL,
  rating_count INT NOT NULL,
  PRIMARY KEY (sku)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;

INSERT IGNORE INTO ratings.ratings (sku, avg_rating, rating_count) VALUES
  ('RS-GARDEN-01', 4.50, 12),
  ('RS-KITCHEN-02', 3.75, 8),
  ('RS-TUTOR-05', 4.90, 31),
  ('RS-SORTER-08', 4.00, 3),
  ('RS-NURSE-11', 5.00, 2);
