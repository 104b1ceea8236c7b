//! The User schema as data: the one description that validation, PATCH path resolution and the
//! `/Schemas` endpoint all read, so what we advertise is what we accept.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Reference,
    Complex,
    DateTime,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Reference => "reference",
            Self::Complex => "complex",
            Self::DateTime => "dateTime",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "readOnly",
            Self::ReadWrite => "readWrite",
            Self::Immutable => "immutable",
            Self::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    /// "always", "never", "default" or "request".
    pub returned: &'static str,
    /// "none" or "server".
    pub uniqueness: &'static str,
    pub description: &'static str,
    pub canonical_values: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
    /// Longest accepted string, in characters.
    pub max_len: usize,
    /// What a reference points to: `external`, or the resource types it names.
    pub reference_types: &'static [&'static str],
}

const fn text(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty: AttrType::String,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: "default",
        uniqueness: "none",
        description,
        canonical_values: &[],
        sub_attributes: &[],
        max_len: 256,
        reference_types: &["external"],
    }
}

const NAME_SUB_ATTRIBUTES: &[AttrDef] = &[
    text("formatted", "The full name, formatted for display."),
    text("familyName", "The family name, or last name."),
    text("givenName", "The given name, or first name."),
    text("middleName", "The middle name(s)."),
    text("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
    text("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
];

const EMAIL_SUB_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        required: true,
        max_len: 320,
        ..text("value", "The email address.")
    },
    text("display", "A human-readable name for the address."),
    AttrDef {
        canonical_values: &["work", "home", "other"],
        ..text(
            "type",
            "A label for the address: 'work', 'home' or 'other'.",
        )
    },
    AttrDef {
        ty: AttrType::Boolean,
        ..text(
            "primary",
            "Whether this is the primary address; at most one value may be true.",
        )
    },
];

pub const USER_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        required: true,
        uniqueness: "server",
        ..text(
            "userName",
            "Unique identifier for sign-in, unique case-insensitively.",
        )
    },
    AttrDef {
        ty: AttrType::Complex,
        sub_attributes: NAME_SUB_ATTRIBUTES,
        ..text("name", "The components of the user's name.")
    },
    text("displayName", "The name shown to people."),
    text("nickName", "The casual name of the user."),
    AttrDef {
        ty: AttrType::Reference,
        max_len: 2048,
        ..text("profileUrl", "A URI of the user's online profile.")
    },
    text("title", "The user's title, e.g. 'Vice President'."),
    text(
        "userType",
        "The relationship to the organization, e.g. 'Employee'.",
    ),
    text(
        "preferredLanguage",
        "Preferred written or spoken language, e.g. 'en-US'.",
    ),
    text("locale", "Default location for localization, e.g. 'en-US'."),
    text("timezone", "Time zone in IANA format, e.g. 'Europe/Paris'."),
    AttrDef {
        ty: AttrType::Boolean,
        ..text("active", "Whether the user may sign in. Defaults to true.")
    },
    AttrDef {
        mutability: Mutability::WriteOnly,
        returned: "never",
        case_exact: true,
        ..text(
            "password",
            "The sign-in password. Write-only; stored as an Argon2id hash.",
        )
    },
    AttrDef {
        multi_valued: true,
        ty: AttrType::Complex,
        sub_attributes: EMAIL_SUB_ATTRIBUTES,
        ..text("emails", "Email addresses of the user.")
    },
];

/// Common attributes (RFC 7643 §3.1) that clients may echo back and that the server ignores.
pub const READ_ONLY_COMMON: &[&str] = &["id", "meta", "groups"];

pub const EXTERNAL_ID: AttrDef = AttrDef {
    case_exact: true,
    ..text(
        "externalId",
        "The identifier of the user in the provisioning client.",
    )
};

const MFA_EXTENSION_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        mutability: Mutability::ReadOnly,
        case_exact: true,
        canonical_values: &["pending", "enrolled"],
        ..text(
            "totpStatus",
            "pending (enrolment started) or enrolled (confirmed TOTP factor); unassigned without one",
        )
    },
    AttrDef {
        ty: AttrType::Boolean,
        ..text(
            "mfaRequired",
            "Require 2-step verification at every sign-in of this user, whatever the client asks.",
        )
    },
];

/// The 2-step verification extension, handled as a complex attribute named by its URN.
pub const MFA_EXTENSION: AttrDef = AttrDef {
    ty: AttrType::Complex,
    sub_attributes: MFA_EXTENSION_ATTRIBUTES,
    ..text(
        super::MFA_EXTENSION_SCHEMA,
        "2-step verification of the user",
    )
};

/// Looks an attribute up by name, ignoring case as RFC 7643 §2.1 requires.
pub fn find<'a>(defs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    defs.iter().find(|def| def.name.eq_ignore_ascii_case(name))
}

/// A top-level User attribute, `externalId` included.
pub fn find_user_attr(name: &str) -> Option<&'static AttrDef> {
    if EXTERNAL_ID.name.eq_ignore_ascii_case(name) {
        return Some(&EXTERNAL_ID);
    }
    if MFA_EXTENSION.name.eq_ignore_ascii_case(name) {
        return Some(&MFA_EXTENSION);
    }
    find(USER_ATTRIBUTES, name)
}

const USER_GROUP_SUB_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        mutability: Mutability::ReadOnly,
        case_exact: true,
        ..text("value", "The id of the group.")
    },
    AttrDef {
        ty: AttrType::Reference,
        mutability: Mutability::ReadOnly,
        case_exact: true,
        reference_types: &["Group"],
        ..text("$ref", "The URI of the group.")
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..text("display", "The displayName of the group.")
    },
];

/// `User.groups`: read-only, reflecting membership; changed through `/Groups`.
pub const USER_GROUPS: AttrDef = AttrDef {
    multi_valued: true,
    ty: AttrType::Complex,
    mutability: Mutability::ReadOnly,
    sub_attributes: USER_GROUP_SUB_ATTRIBUTES,
    ..text(
        "groups",
        "The groups the user belongs to; change membership through /Groups.",
    )
};

const GROUP_MEMBER_SUB_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        mutability: Mutability::Immutable,
        case_exact: true,
        ..text("value", "The id of a user of this server.")
    },
    AttrDef {
        ty: AttrType::Reference,
        mutability: Mutability::Immutable,
        case_exact: true,
        reference_types: &["User"],
        ..text("$ref", "The URI of the user.")
    },
    AttrDef {
        mutability: Mutability::Immutable,
        canonical_values: &["User"],
        ..text("type", "Always User: groups do not nest.")
    },
];

/// The Group schema (RFC 7643 §4.2).
pub const GROUP_ATTRIBUTES: &[AttrDef] = &[
    AttrDef {
        required: true,
        uniqueness: "server",
        ..text(
            "displayName",
            "The name of the group, unique ignoring case.",
        )
    },
    AttrDef {
        case_exact: true,
        ..text(
            "externalId",
            "The identifier of the group in the provisioning client.",
        )
    },
    AttrDef {
        multi_valued: true,
        ty: AttrType::Complex,
        sub_attributes: GROUP_MEMBER_SUB_ATTRIBUTES,
        ..text("members", "The users in the group.")
    },
];
