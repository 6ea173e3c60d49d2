// Catalogue's data: the database `catalogue` and its collection `products`, which the
// catalogue service reads (every product, one by sku, by category, the list of categories,
// and a text search over name and description).
//
// The Bitnami MongoDB image runs this file with mongosh as the root user, once, when the data
// directory is empty (initdbScriptsConfigMap in helm/robot-shop/values.yaml). The products
// are this repository's own. The web image has pictures only for the upstream demo's SKUs,
// so the storefront shows its placeholder picture for these.

const catalogue = db.getSiblingDB("catalogue");

catalogue.createCollection("products");

// One product per sku, and a text index for the search box.
catalogue.products.createIndex({ sku: 1 }, { unique: true });
catalogue.products.createIndex({ name: "text", description: "text" });

catalogue.products.insertMany([
  {
    sku: "RS-GARDEN-01",
    name: "Hedgehog Lawn Keeper",
    description: "Mows by moonlight, stops for every hedgehog and parks itself in the shed before dawn",
    price: 649,
    instock: 14,
    categories: ["Robot", "Home"],
  },
  {
    sku: "RS-KITCHEN-02",
    name: "Sous-Chef Mk II",
    description: "Two arms, eleven knives and a firm opinion about salt; cleans up after itself",
    price: 2390,
    instock: 3,
    categories: ["Robot", "Home"],
  },
  {
    sku: "RS-PORTER-03",
    name: "Stairwell Porter",
    description: "Carries forty kilos up six floors on tracks, and says good morning to the neighbours",
    price: 1875,
    instock: 6,
    categories: ["Robot", "Logistics"],
  },
  {
    sku: "RS-DRONE-04",
    name: "Orchard Survey Drone",
    description: "Counts blossoms, spots blight early and flies home on its own when the wind picks up",
    price: 980,
    instock: 22,
    categories: ["Drone", "Logistics"],
  },
  {
    sku: "RS-TUTOR-05",
    name: "Patient Tutor",
    description: "Explains long division a ninth time without a sigh; speaks twelve languages",
    price: 420,
    instock: 40,
    categories: ["Artificial Intelligence"],
  },
  {
    sku: "RS-LIBRARY-06",
    name: "Archive Librarian",
    description: "Indexes every page it is shown and answers questions with the shelf and page number",
    price: 1310,
    instock: 0,
    categories: ["Artificial Intelligence"],
  },
  {
    sku: "RS-WELDER-07",
    name: "Shipyard Welding Crawler",
    description: "Magnetic tracks, a steady hand on a hull at any angle, and no fear of heights",
    price: 7400,
    instock: 2,
    categories: ["Robot", "Industrial"],
  },
  {
    sku: "RS-SORTER-08",
    name: "Recycling Sorter",
    description: "Tells aluminium from tin by the sound of a tap, four thousand items an hour",
    price: 5120,
    instock: 5,
    categories: ["Robot", "Industrial"],
  },
  {
    sku: "RS-DIVER-09",
    name: "Reef Diver",
    description: "Surveys coral down to sixty metres and surfaces with photographs and water samples",
    price: 3350,
    instock: 4,
    categories: ["Drone"],
  },
  {
    sku: "RS-PLANNER-10",
    name: "Route Planner Core",
    description: "Plans delivery rounds for a fleet of vans, replanning when a road closes",
    price: 260,
    instock: 120,
    categories: ["Artificial Intelligence", "Logistics"],
  },
  {
    sku: "RS-NURSE-11",
    name: "Night Ward Assistant",
    description: "Quiet wheels, a warm voice, and a call to the nurse the moment something looks wrong",
    price: 4800,
    instock: 1,
    categories: ["Robot", "Artificial Intelligence"],
  },
  {
    sku: "RS-PAINTER-12",
    name: "Line Painter",
    description: "Marks football pitches and car parks with millimetre accuracy from a survey file",
    price: 1540,
    instock: 9,
    categories: ["Robot", "Industrial"],
  },
]);
