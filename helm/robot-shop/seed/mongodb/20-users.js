// User's data: the database `users` with the collections the user service reads: `users`
// (login by name and password, registration, the list of users) and `orders` (each user's
// order history, written when a payment goes through).
//
// The Bitnami MongoDB image runs this file with mongosh as the root user, once, when the data
// directory is empty (initdbScriptsConfigMap in helm/robot-shop/values.yaml).
//
// The two demo users are for trying the shop out; the user service compares passwords in
// plain text (a limitation of the upstream image), so these must never be real passwords.

const users = db.getSiblingDB("users");

users.createCollection("users");
users.createCollection("orders");

// Names are logins: one user per name, one order history per user.
users.users.createIndex({ name: 1 }, { unique: true });
users.orders.createIndex({ name: 1 }, { unique: true });

users.users.insertMany([
  { name: "demo", password: "demo-robot", email: "demo@robot-shop.example" },
  { name: "ada", password: "difference-engine", email: "ada@robot-shop.example" },
]);
