"""The storefront's backend side: order status for the success page, re-sending links,
and the static-site builder (`python -m commerce.storefront.build`)."""
