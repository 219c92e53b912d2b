"""Channel adapters behind one protocol (base.py): SMTP, HTTP providers (generic, Twilio, FCM), in-app, webhook,
Web Push, and offline ones (direct-mail print file, call-centre list)."""
