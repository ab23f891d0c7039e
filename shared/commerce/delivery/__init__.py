"""Delivery: release artifacts, download redemption and the fulfillment e-mail.

Modules import their SDKs lazily or are imported lazily by the composition root, so
the `download` function never loads stripe, sendgrid or the Cloud Tasks client.
"""
