"""Channel taxonomy: every event gets exactly one channel, derived by documented rules.

Rules, first match wins (docs/channels.md explains them for users):
1. an explicit ``context.channel`` or ``properties.channel`` naming a channel or a known synonym;
2. the campaign medium (``context.campaign.medium`` or ``utm_medium`` in the page URL), then the campaign source;
3. the source's default channel (set when the source is created), unless it is ``auto``;
4. the client library (analytics.js -> web, analytics-ios/android/react-native/flutter -> app);
5. otherwise ``other``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

CHANNELS: tuple[str, ...] = (
    "web",
    "app",
    "email",
    "sms",
    "push",
    "messenger",
    "social",
    "ads",
    "store",
    "call_center",
    "direct_mail",
    "kiosk",
    "other",
)

SYNONYMS: dict[str, str] = {
    "website": "web",
    "browser": "web",
    "online": "web",
    "ecommerce": "web",
    "mobile": "app",
    "mobile_app": "app",
    "ios": "app",
    "android": "app",
    "in_app": "app",
    "e-mail": "email",
    "mail": "email",
    "newsletter": "email",
    "text": "sms",
    "mms": "sms",
    "push_notification": "push",
    "notification": "push",
    "web_push": "push",
    "chat": "messenger",
    "whatsapp": "messenger",
    "facebook_messenger": "messenger",
    "telegram": "messenger",
    "wechat": "messenger",
    "line": "messenger",
    "viber": "messenger",
    "live_chat": "messenger",
    "pos": "store",
    "in_store": "store",
    "retail": "store",
    "shop": "store",
    "till": "store",
    "call_centre": "call_center",
    "callcenter": "call_center",
    "call-center": "call_center",
    "contact_center": "call_center",
    "phone": "call_center",
    "telephone": "call_center",
    "post": "direct_mail",
    "letter": "direct_mail",
    "catalog": "direct_mail",
    "ad": "ads",
    "advertising": "ads",
    "paid": "ads",
}

MEDIUM_CHANNELS: dict[str, str] = {
    "email": "email",
    "e-mail": "email",
    "newsletter": "email",
    "sms": "sms",
    "text": "sms",
    "push": "push",
    "push_notification": "push",
    "web_push": "push",
    "cpc": "ads",
    "ppc": "ads",
    "cpm": "ads",
    "cpv": "ads",
    "display": "ads",
    "paid_search": "ads",
    "paid_social": "ads",
    "paidsocial": "ads",
    "banner": "ads",
    "retargeting": "ads",
    "affiliate": "ads",
    "video": "ads",
    "social": "social",
    "organic_social": "social",
    "social_media": "social",
    "whatsapp": "messenger",
    "messenger": "messenger",
    "chat": "messenger",
    "qr": "store",
    "in_store": "store",
    "pos": "store",
    "direct_mail": "direct_mail",
    "print": "direct_mail",
    "mail": "direct_mail",
}

SOURCE_CHANNELS: dict[str, str] = {
    "facebook": "social",
    "instagram": "social",
    "tiktok": "social",
    "twitter": "social",
    "x": "social",
    "linkedin": "social",
    "pinterest": "social",
    "youtube": "social",
    "google_ads": "ads",
    "adwords": "ads",
    "criteo": "ads",
    "bing_ads": "ads",
    "newsletter": "email",
    "mailchimp": "email",
    "klaviyo": "email",
    "whatsapp": "messenger",
}

LIBRARY_CHANNELS: dict[str, str] = {
    "analytics.js": "web",
    "analytics-next": "web",
    "@segment/analytics-next": "web",
    "rudderstack-javascript-sdk": "web",
    "rudderlabs-javascript-sdk": "web",
    "rudder-analytics": "web",
    "analytics-ios": "app",
    "analytics-android": "app",
    "analytics-react-native": "app",
    "analytics-swift": "app",
    "analytics-kotlin": "app",
    "analytics-flutter": "app",
    "rudder-ios-library": "app",
    "rudder-android-library": "app",
    "rudder-sdk-react-native": "app",
}


def normalise_channel(value: Any) -> str | None:
    """Map a channel name or synonym to the taxonomy, or None if it names no channel."""
    if not isinstance(value, str):
        return None
    key = value.strip().lower().replace(" ", "_")
    if key in CHANNELS:
        return key
    return SYNONYMS.get(key)


def campaign_of(message: dict[str, Any]) -> dict[str, str]:
    """The campaign (UTM) fields of a message, from context.campaign or the page URL's query string."""
    context = message.get("context")
    campaign: dict[str, str] = {}
    if isinstance(context, dict):
        raw = context.get("campaign")
        if isinstance(raw, dict):
            for key in ("source", "medium", "name", "term", "content"):
                value = raw.get(key)
                if isinstance(value, str) and value:
                    campaign[key] = value
        if "medium" not in campaign and "source" not in campaign:
            page = context.get("page")
            url = page.get("url") if isinstance(page, dict) else None
            if not isinstance(url, str):
                props = message.get("properties")
                url = props.get("url") if isinstance(props, dict) else None
            if isinstance(url, str) and "utm_" in url:
                query = parse_qs(urlsplit(url).query)
                for key in ("source", "medium", "campaign", "term", "content"):
                    values = query.get(f"utm_{key}")
                    if values and values[0]:
                        campaign["name" if key == "campaign" else key] = values[0]
    return campaign


def derive_channel(message: dict[str, Any], source_channel: str, library: str | None, campaign: dict[str, str]) -> str:
    """Apply the channel rules (see module docstring) to one message."""
    context = message.get("context")
    if isinstance(context, dict) and (explicit := normalise_channel(context.get("channel"))):
        return explicit
    properties = message.get("properties")
    if isinstance(properties, dict) and (explicit := normalise_channel(properties.get("channel"))):
        return explicit
    medium = campaign.get("medium", "").strip().lower()
    if medium in MEDIUM_CHANNELS:
        return MEDIUM_CHANNELS[medium]
    source = campaign.get("source", "").strip().lower()
    if source in SOURCE_CHANNELS:
        return SOURCE_CHANNELS[source]
    if source_channel in CHANNELS and source_channel != "other":
        return source_channel
    if library:
        lib = library.strip().lower()
        if lib in LIBRARY_CHANNELS:
            return LIBRARY_CHANNELS[lib]
    return "other"
