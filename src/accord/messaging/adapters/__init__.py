"""Channel adapters behind one protocol (base.py): SMTP, HTTP providers (generic, Twilio, FCM), in-app, webhook."""
