//! Function instances: isolated process trees with their own Lambda Runtime API endpoint.
