"""Purchase: checkout, the Stripe webhook with exactly-once fulfillment, refunds and
disputes, and reconciliation. Only `gateway` imports the `stripe` library."""
